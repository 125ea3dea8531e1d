/*
 * lid-init: the first process of every Lid sandbox, and the only code Lid runs between fork and the job's exec.
 *
 * Why it exists: Node's child_process.spawn (libuv) gives no hook between fork and exec, yet two steps must happen
 * in the new process before the job's first instruction: /proc must be mounted by a process inside the new pid
 * namespace (a procfs shows the pid namespace of whoever mounts it), and the process must already sit in the job's
 * cgroups. The spawner thread (runtime/sandbox-thread.ts) does everything else -- namespaces, overlay, /dev,
 * pivot_root, cgroup attach -- while this process waits at its gate; then it mounts /proc, drops every privilege
 * and execs the job, which so becomes PID 1 of its namespace.
 *
 * usage: lid-init UID GID CWD CMD [ARG...]   fd 3: gate (one byte means go), fd 4: status (written only on failure)
 * It inherits no_new_privs and the seccomp filter from the spawner thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GATE_FD 3
#define STATUS_FD 4

/* Reports "STAGE ERRNO" to the runtime, which turns it into a readable error, and ends the sandbox. */
static void fail(const char *stage) {
  char msg[96];
  int n = snprintf(msg, sizeof msg, "%s %d", stage, errno);
  if (write(STATUS_FD, msg, (size_t)n) < 0) { /* nothing more to do */ }
  _exit(127);
}

/* Paths of /proc that reveal or reach the host kernel: hidden behind /dev/null, or made read-only. */
static const char *const masked[] = {"/proc/kcore", "/proc/sysrq-trigger", "/proc/timer_list", "/proc/keys",
                                     "/proc/latency_stats", "/proc/sched_debug", "/proc/kallsyms", NULL};
static const char *const read_only[] = {"/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq", NULL};

static void mount_proc(void) {
  const unsigned long safe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (mount("proc", "/proc", "proc", safe, NULL) != 0) fail("mount /proc");
  for (int i = 0; masked[i]; i++)
    if (mount("/dev/null", masked[i], NULL, MS_BIND, NULL) != 0 && errno != ENOENT) fail("mask /proc path");
  for (int i = 0; read_only[i]; i++) {
    if (mount(read_only[i], read_only[i], NULL, MS_BIND | MS_REC, NULL) != 0) {
      if (errno == ENOENT) continue;
      fail("bind /proc path");
    }
    if (mount(NULL, read_only[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | safe, NULL) != 0) fail("make /proc path read-only");
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

int main(int argc, char **argv) {
  if (argc < 5) return 126;
  if (fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) != 0) return 126;
  char go;
  if (read(GATE_FD, &go, 1) != 1) _exit(126); /* the runtime gave up on this sandbox */
  close(GATE_FD);

  /* Now inside the job's cgroups: a cgroup namespace rooted here hides the host's cgroup paths. */
  if (unshare(CLONE_NEWCGROUP) != 0) fail("unshare cgroup namespace");
  mount_proc();
  loopback_up();

  uid_t uid = (uid_t)strtoul(argv[1], NULL, 10);
  gid_t gid = (gid_t)strtoul(argv[2], NULL, 10);
  for (int cap = 0; cap <= 63; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0); /* EINVAL past the last cap: fine */
  if (setgroups(0, NULL) != 0) fail("setgroups");
  if (setresgid(gid, gid, gid) != 0) fail("setresgid");
  if (setresuid(uid, uid, uid) != 0) fail("setresuid"); /* all uids non-zero: the kernel clears every capability */
  if (chdir(argv[3]) != 0) fail("chdir to the working directory");
  if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) fail("close_range");
  execvp(argv[4], argv + 4);
  fail("exec");
  return 127;
}
