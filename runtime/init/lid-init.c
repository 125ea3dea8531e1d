/*
 * lid-init: the first process of every Lid sandbox, and the only code Lid runs between fork and the job's exec.
 *
 * Why it exists: Node's child_process.spawn (libuv) gives no hook between fork and exec, yet several steps must
 * happen in the new process before the job's first instruction: /proc must be mounted by a process inside the new
 * pid namespace (a procfs shows the pid namespace of whoever mounts it), the process must already sit in the job's
 * cgroups, it must leave the worker's session, and the job's identity must be set up from inside the sandbox's own
 * root. The spawner thread (runtime/sandbox-thread.ts) does the rest -- namespaces, overlay, /dev, pivot_root, cgroup
 * attach -- while this process waits at its gate.
 *
 * Order, and why:
 *   setsid            first of all: a sandbox never shares the worker's session or process group, so kill(0, sig)
 *                     or kill(-pgid, sig) from one sandbox reaches no other, and no controlling terminal is left
 *                     for /dev/tty to open.
 *   gate              one byte on fd 3 once the spawner has built the root and attached us to the cgroups.
 *   read the spec     from fd 5 (a memfd the spawner fills before opening the gate): the job's argv and environment,
 *                     its user, limits, the paths it must own, and its seccomp program. The tenant's environment is
 *                     applied only right before exec, after every privilege is gone.
 *   cgroup ns, /proc  (masked, fail-closed), loopback up.
 *   image user        resolved here, inside the sandbox's root, from its own /etc/passwd and /etc/group: host-side
 *                     code never walks an image's paths (an image's etc -> /etc or etc/passwd -> /dev/zero would
 *                     otherwise reach the host). Files must be regular and are read up to 1 MiB. The files Lid
 *                     placed for the job are then given to that user.
 *   rlimits           while still root, so NOFILE may exceed the worker's own.
 *   user namespace    setns into the uid slot's namespace (fd 6, runtime/uid-slots.ts): the job's uid inside is
 *                     the image's USER, so id, whoami and ownership mean what the image says, and on the host it is
 *                     a uid no other running sandbox has.
 *   drop privileges   bounding set, ambient and inheritable capabilities, groups, gids, uids; no_new_privs.
 *   seccomp           the job's filter (runtime/seccomp.ts), last, since it also forbids what the steps above need.
 *   exec              the job becomes PID 1 of its pid namespace.
 *
 * usage: lid-init                 fd 3: gate (one byte means go), fd 4: status (written only on failure), fd 5: spec,
 *                                  fd 6: the user namespace to enter
 *        lid-init userns-holder   unshares a user namespace, writes one byte to stdout, waits for stdin to close
 *                                  (runtime/user-namespace.ts writes its maps meanwhile and keeps an fd of it)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <grp.h>
#include <unistd.h>

#define GATE_FD 3
#define STATUS_FD 4
#define SPEC_FD 5
#define USERNS_FD 6
#define SPEC_MAGIC "LID-INIT-SPEC 1"
#define MAX_SPEC_BYTES (256u << 20)
#define MAX_ID_FILE_BYTES (1u << 20)
#define UNPRIVILEGED_ID 65534u

extern char **environ;

/*
 * Built with -DLID_INIT_TIMING, lid-init writes "step microseconds" lines to stderr (the job's stderr) after each
 * step since the gate, for finding where setup time goes; the normal build has no trace of it.
 */
#ifdef LID_INIT_TIMING
#include <time.h>
static double timing_start;
static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
#define MARK(step)                                                                        \
  do {                                                                                    \
    char line[64];                                                                        \
    int len = snprintf(line, sizeof line, "%s %.0f\n", step, now_us() - timing_start);    \
    if (write(2, line, (size_t)len) < 0) { /* best effort */ }                           \
  } while (0)
#define MARK_START() (timing_start = now_us())
#else
#define MARK(step) ((void)0)
#define MARK_START() ((void)0)
#endif

/* Reports "STAGE ERRNO" to the runtime, which turns it into a readable error, and ends the sandbox. */
static void fail(const char *stage) {
  char msg[160];
  int n = snprintf(msg, sizeof msg, "%s %d", stage, errno);
  if (write(STATUS_FD, msg, (size_t)n) < 0) { /* nothing more to do */ }
  _exit(127);
}

static void fail_with(const char *stage, int err) {
  errno = err;
  fail(stage);
}

/* ---- the spec: NUL-terminated fields, written by runtime/init-spec.ts --------------------------------------- */

struct spec {
  unsigned long id_base;  /* host id of the slot: the job's id u is id_base + u on the host */
  unsigned long max_id;   /* the highest id the slot maps (ids above it cannot be used) */
  const char *user; /* "" (unprivileged default), "uid[:gid]" or "name[:group]", resolved in resolve_user */
  const char *cwd;
  rlim_t nofile, stack, fsize;
  /* A networked sandbox's eth0 (runtime/net/): its IPv4 address, prefix and gateway; empty when it has none. */
  const char *net_address;
  unsigned long net_prefix;
  const char *net_gateway;
  char **owned; /* paths Lid placed for the job, to be owned by its user */
  char **argv;
  char **envp;
  struct sock_fprog seccomp;
};

struct cursor {
  const char *at, *end;
};

static const char *next_field(struct cursor *c) {
  const char *nul = memchr(c->at, '\0', (size_t)(c->end - c->at));
  if (!nul) fail_with("read spec", EINVAL);
  const char *field = c->at;
  c->at = nul + 1;
  return field;
}

static unsigned long next_number(struct cursor *c) {
  const char *field = next_field(c);
  char *end;
  errno = 0;
  unsigned long n = strtoul(field, &end, 10);
  if (*field == '\0' || *end != '\0' || errno) fail_with("read spec", EINVAL);
  return n;
}

static char **next_list(struct cursor *c) {
  unsigned long count = next_number(c);
  if (count > (unsigned long)(c->end - c->at)) fail_with("read spec", EINVAL);
  char **list = calloc(count + 1, sizeof *list);
  if (!list) fail("read spec");
  for (unsigned long i = 0; i < count; i++) list[i] = (char *)next_field(c);
  return list;
}

static void read_spec(struct spec *s) {
  struct stat st;
  if (fstat(SPEC_FD, &st) != 0) fail("read spec");
  if (st.st_size <= 0 || (unsigned long)st.st_size > MAX_SPEC_BYTES) fail_with("read spec", EFBIG);
  const char *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, SPEC_FD, 0);
  if (data == MAP_FAILED) fail("read spec");
  close(SPEC_FD);
  struct cursor c = {data, data + st.st_size};
  if (strcmp(next_field(&c), SPEC_MAGIC) != 0) fail_with("read spec", EPROTO);
  s->id_base = next_number(&c);
  s->max_id = next_number(&c);
  s->user = next_field(&c);
  s->cwd = next_field(&c);
  s->nofile = next_number(&c);
  s->stack = next_number(&c);
  s->fsize = next_number(&c);
  s->net_address = next_field(&c);
  s->net_prefix = next_number(&c);
  s->net_gateway = next_field(&c);
  s->owned = next_list(&c);
  s->argv = next_list(&c);
  s->envp = next_list(&c);
  unsigned long filter_bytes = next_number(&c);
  if (filter_bytes == 0 || filter_bytes % sizeof(struct sock_filter) || filter_bytes / 8 > BPF_MAXINSNS ||
      filter_bytes != (unsigned long)(c.end - c.at) || !s->argv[0])
    fail_with("read spec", EINVAL);
  /* The mapping is page-aligned and the fields before the program are arbitrary text: copy it to aligned memory. */
  struct sock_filter *program = malloc(filter_bytes);
  if (!program) fail("read spec");
  memcpy(program, c.at, filter_bytes);
  s->seccomp.len = (unsigned short)(filter_bytes / sizeof(struct sock_filter));
  s->seccomp.filter = program;
}

/* ---- the user namespace ------------------------------------------------------------------------------- */

/*
 * The holder mode: makes a user namespace for runtime/user-namespace.ts, which maps it and keeps an fd of it.
 * The kernel refuses a new user namespace to a process inside a chroot (seen: the v2 test VM runs everything under
 * one). Entering one's own mount namespace again moves the root to that namespace's real root (kernel fact 4), which
 * is no chroot; the user namespace made then does not depend on where it was made.
 */
static int leave_chroot(void) {
  int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = setns(fd, CLONE_NEWNS);
  close(fd);
  return r == 0 ? chdir("/") : -1;
}

static int hold_user_namespace(void) {
  if (unshare(CLONE_NEWUSER) != 0 && (errno != EPERM || leave_chroot() != 0 || unshare(CLONE_NEWUSER) != 0)) return 1;
  if (write(1, "r", 1) != 1) return 2;
  char c;
  while (read(0, &c, 1) > 0) { /* wait for end of file */ }
  return 0;
}

/* Gives the paths Lid placed for the job to its user (host ids: still outside the user namespace). */
static void own_placed_paths(const struct spec *s, unsigned long uid, unsigned long gid) {
  for (char **path = s->owned; *path; path++)
    if (fchownat(AT_FDCWD, *path, (uid_t)(s->id_base + uid), (gid_t)(s->id_base + gid), AT_SYMLINK_NOFOLLOW) != 0)
      fail("give the job its files");
}

static void enter_user_namespace(void) {
  if (setns(USERNS_FD, CLONE_NEWUSER) != 0) fail("enter the user namespace");
  close(USERNS_FD);
}

/* ---- /proc ----------------------------------------------------------------------------------------------- */

/* Paths of /proc that reveal or reach the host kernel: hidden behind /dev/null, or made read-only. */
static const char *const masked[] = {"/proc/kcore", "/proc/sysrq-trigger", "/proc/timer_list", "/proc/keys",
                                     "/proc/latency_stats", "/proc/sched_debug", "/proc/kallsyms", NULL};
static const char *const read_only[] = {"/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq", NULL};

/*
 * Fail-closed: /proc must be a real procfs once mounted (the spawner has checked that the image's /proc is a plain
 * directory), and a mask may be skipped only when this kernel's procfs has no such file; any other failure ends the
 * sandbox before the job runs.
 */
static void disable_ipv6(void);

static void mount_proc(int networked) {
  const unsigned long safe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (mount("proc", "/proc", "proc", safe, NULL) != 0) fail("mount /proc");
  struct statfs fs;
  if (statfs("/proc", &fs) != 0) fail("mount /proc");
  if (fs.f_type != PROC_SUPER_MAGIC) fail_with("mount /proc", ENOTDIR);
  if (networked) disable_ipv6(); /* while /proc/sys is still writable */
  for (int i = 0; masked[i]; i++)
    if (mount("/dev/null", masked[i], NULL, MS_BIND, NULL) != 0 && errno != ENOENT) fail("mask /proc path");
  for (int i = 0; read_only[i]; i++) {
    if (mount(read_only[i], read_only[i], NULL, MS_BIND | MS_REC, NULL) != 0) {
      if (errno == ENOENT) continue;
      fail("bind /proc path");
    }
    if (mount(NULL, read_only[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | safe, NULL) != 0)
      fail("make /proc path read-only");
  }
}

/* The new network namespace has only a loopback device, and it starts down. */
static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) fail("bring loopback up");
  }
  close(s);
}

/*
 * A networked sandbox's side of its veth pair (the spawner made the pair and put this end, eth0, here): its address,
 * up, and the default route through the bridge. IPv6 is off in networked sandboxes (the host drops it too), so the
 * kernel gives eth0 no IPv6 address to leak through. Classic ioctls: a handful, no netlink needed in here.
 */
static void configure_eth0(const struct spec *s) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("configure eth0");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "eth0");
  struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
  sin->sin_family = AF_INET;
  if (inet_pton(AF_INET, s->net_address, &sin->sin_addr) != 1) fail_with("configure eth0", EINVAL);
  if (ioctl(fd, SIOCSIFADDR, &ifr) != 0) fail("set eth0's address");
  sin->sin_addr.s_addr = htonl(s->net_prefix == 0 ? 0 : ~0U << (32 - s->net_prefix));
  if (ioctl(fd, SIOCSIFNETMASK, &ifr) != 0) fail("set eth0's netmask");
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) fail("bring eth0 up");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) fail("bring eth0 up");
  struct rtentry route;
  memset(&route, 0, sizeof route);
  ((struct sockaddr_in *)&route.rt_dst)->sin_family = AF_INET;
  ((struct sockaddr_in *)&route.rt_genmask)->sin_family = AF_INET;
  struct sockaddr_in *gw = (struct sockaddr_in *)&route.rt_gateway;
  gw->sin_family = AF_INET;
  if (inet_pton(AF_INET, s->net_gateway, &gw->sin_addr) != 1) fail_with("add the default route", EINVAL);
  route.rt_flags = RTF_UP | RTF_GATEWAY;
  route.rt_dev = "eth0";
  if (ioctl(fd, SIOCADDRT, &route) != 0) fail("add the default route");
  close(fd);
}

static void disable_ipv6(void) {
  const char *const files[] = {"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6",
                               NULL};
  for (int i = 0; files[i]; i++) {
    int fd = open(files[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return; /* a kernel without IPv6: nothing to turn off */
      fail("turn IPv6 off");
    }
    if (write(fd, "1", 1) != 1) fail("turn IPv6 off");
    close(fd);
  }
}

/* ---- the image's user ------------------------------------------------------------------------------------ */

/*
 * Reads one of the image's id files, inside the sandbox root. O_NOFOLLOW on the last component and a regular-file
 * check refuse a file that is a symlink, a device or a FIFO (a read of /dev/zero never ends); the size is capped.
 * Returns NULL (errno ENOENT) when the image has no such file.
 */
static char *read_id_file(const char *path, const char *stage) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NULL;
    fail(stage); /* ELOOP: a symlink; ENOTDIR/ELOOP on the way: /etc is not a directory of the image */
  }
  struct stat st;
  if (fstat(fd, &st) != 0) fail(stage);
  if (!S_ISREG(st.st_mode)) fail_with(stage, EINVAL);
  if (st.st_size > (off_t)MAX_ID_FILE_BYTES) fail_with(stage, EFBIG);
  char *text = malloc((size_t)st.st_size + 1);
  if (!text) fail(stage);
  size_t got = 0;
  for (ssize_t n; got < (size_t)st.st_size && (n = read(fd, text + got, (size_t)st.st_size - got)) != 0; got += (size_t)n)
    if (n < 0) fail(stage);
  text[got] = '\0';
  close(fd);
  return text;
}

static int all_digits(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

/* Finds `name` in a passwd or group text: sets *id (field 3) and, for passwd, *gid (field 4). 1 when found. */
static int lookup(char *text, const char *name, unsigned long *id, unsigned long *gid) {
  for (char *line = text, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    char *fields[4] = {0};
    char *rest = line;
    for (int f = 0; f < 4 && rest; f++) fields[f] = strsep(&rest, ":");
    if (!fields[0] || strcmp(fields[0], name) != 0 || !fields[2] || !all_digits(fields[2])) continue;
    *id = strtoul(fields[2], NULL, 10);
    if (gid) *gid = fields[3] && all_digits(fields[3]) ? strtoul(fields[3], NULL, 10) : *id;
    return 1;
  }
  return 0;
}

/*
 * OCI "User": "name", "uid", "name:group" or "uid:gid"; names come from the image's files. Jobs never run as root:
 * a user or group that is (or resolves to) 0, or none at all, runs as the unprivileged 65534:65534.
 */
static void resolve_user(const char *spec, unsigned long *uid, unsigned long *gid) {
  *uid = *gid = UNPRIVILEGED_ID;
  if (!*spec) return;
  char *user = strdup(spec);
  if (!user) fail("resolve the image's user");
  char *group = strchr(user, ':');
  if (group) *group++ = '\0';
  if (all_digits(user)) {
    *uid = strtoul(user, NULL, 10);
    *gid = *uid;
  } else {
    char *passwd = read_id_file("/etc/passwd", "read the image's /etc/passwd");
    if (!passwd || !lookup(passwd, user, uid, gid)) fail_with("find the image's user", ENOENT);
  }
  if (group) {
    if (all_digits(group)) {
      *gid = strtoul(group, NULL, 10);
    } else {
      char *groups = read_id_file("/etc/group", "read the image's /etc/group");
      if (!groups || !lookup(groups, group, gid, NULL)) fail_with("find the image's group", ENOENT);
    }
  }
  if (*uid == 0 || *gid == 0 || *uid > 0xfffffffeUL || *gid > 0xfffffffeUL) *uid = *gid = UNPRIVILEGED_ID;
}

/* ---- limits and privileges ------------------------------------------------------------------------------- */

static void set_limit(int resource, rlim_t value, const char *stage) {
  struct rlimit rl = {value, value};
  if (setrlimit(resource, &rl) != 0) fail(stage);
}

/*
 * lid-init starts with only the capabilities it needs, as ambient ones, and an empty bounding set (the spawner thread
 * arranges both: runtime/sandbox-thread.ts). Entering the user namespace gave it a full set again, valid inside it:
 * drop that bounding set (EINVAL marks the end of the kernel's capabilities), then the rest.
 */
static void drop_privileges(unsigned long uid, unsigned long gid) {
  for (int cap = 0; prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0; cap++) { /* until EINVAL */ }
  if (errno != EINVAL) fail("drop the capability bounding set");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) fail("clear ambient caps");
  if (setgroups(0, NULL) != 0) fail("setgroups");
  if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0) fail("setresgid");
  if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) fail("setresuid"); /* non-zero: clears cap sets */
  /* setresuid leaves the inheritable set as it was: clear it too, so no exec can ever regain anything. */
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &header, data) != 0) fail("capset");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("set no_new_privs");
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "userns-holder") == 0) return hold_user_namespace();
  if (setsid() < 0) return 126;
  if (fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) != 0) return 126;
  char go;
  if (read(GATE_FD, &go, 1) != 1) _exit(126); /* the runtime gave up on this sandbox */
  close(GATE_FD);
  MARK_START();
  struct spec s;
  read_spec(&s);
  MARK("spec");

  /* Now inside the job's cgroups: a cgroup namespace rooted here hides the host's cgroup paths. */
  if (unshare(CLONE_NEWCGROUP) != 0) fail("unshare cgroup namespace");
  MARK("cgroupns");
  mount_proc(*s.net_address != '\0');
  MARK("proc");
  loopback_up();
  if (*s.net_address) configure_eth0(&s);
  MARK("loopback");

  unsigned long uid, gid;
  resolve_user(s.user, &uid, &gid);
  if (uid > s.max_id || gid > s.max_id) fail_with("map the image's user", ERANGE);
  own_placed_paths(&s, uid, gid);
  MARK("user");
  set_limit(RLIMIT_CORE, 0, "set RLIMIT_CORE");
  set_limit(RLIMIT_NOFILE, s.nofile, "set RLIMIT_NOFILE");
  set_limit(RLIMIT_STACK, s.stack, "set RLIMIT_STACK");
  set_limit(RLIMIT_FSIZE, s.fsize, "set RLIMIT_FSIZE");

  MARK("rlimits");
  enter_user_namespace();
  MARK("userns");
  drop_privileges(uid, gid);
  MARK("drop");
  /* Cleared by every credential change above: set last, so the sandbox dies with the thread that spawned it. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail("set the parent-death signal");
  if (chdir(s.cwd) != 0) fail("chdir to the working directory");
  if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) fail("close_range");
  MARK("chdir");
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &s.seccomp, 0, 0) != 0) fail("install the seccomp filter");
  MARK("seccomp");
  environ = s.envp; /* the tenant's environment, only now: execvp searches the job's own PATH */
  execvp(s.argv[0], s.argv);
  fail("exec");
  return 127;
}
