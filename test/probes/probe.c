/*
 * probe: a static test program placed inside sandboxes to observe what busybox cannot.
 *   probe fds            print the open file descriptors, one per line
 *   probe spin MS        burn MS milliseconds of this process's own CPU time, then exit 0
 *   probe alloc MB       allocate MB mebibytes, touch every page, print "touched", exit 0
 *   probe segv           dereference NULL (a real crash: the kernel's SIGSEGV reaches even a namespace's PID 1)
 *   probe syscalls       try each call the seccomp filter must deny, with harmless bad arguments, and print
 *                        "NAME ERRNO_NAME" (EPERM means the filter answered: unfiltered, these arguments give
 *                        EINVAL, EFAULT, EBADF, ESRCH and the like)
 *   probe seccomp [FILE...]  install each FILE (a raw classic-BPF seccomp program) in order, as a sandbox gets
 *                        them, then try every call the policy must deny, with arguments that are harmless even
 *                        for root without a filter, and print "NAME RESULT" (an errno name, or OK); with no FILE,
 *                        the same calls unfiltered: the control
 *   probe tty            write a marker to /dev/tty and push a marker into every fd 0-9 (and /dev/tty) with
 *                        TIOCSTI, printing what each attempt gave
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void try_call(const char *name, long nr, long a, long b, long c, long d) {
  errno = 0;
  long r = syscall(nr, a, b, c, d, 0, 0);
  printf("%s %s\n", name, r == -1 ? strerrorname_np(errno) : "OK");
}

static void result(const char *name, long r) {
  printf("%s %s\n", name, r == -1 ? strerrorname_np(errno) : "OK");
}

#define TRY(name, ...)                  \
  do {                                  \
    errno = 0;                          \
    result(name, syscall(__VA_ARGS__)); \
  } while (0)

/* Runs one call in a child, for calls that would change the probe itself (a new user namespace). */
static void try_in_child(const char *name, long nr, long a) {
  pid_t pid = fork();
  if (pid == 0) {
    errno = 0;
    long r = syscall(nr, a, 0, 0, 0, 0, 0);
    if (r == 0 && nr == SYS_clone) _exit(0); /* the clone's own child */
    _exit(r == -1 ? errno : 0);
  }
  int status;
  waitpid(pid, &status, 0);
  errno = WIFEXITED(status) ? WEXITSTATUS(status) : ECHILD;
  result(name, errno ? -1 : 0);
}

static void install(const char *file) {
  int fd = open(file, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) { perror(file); exit(3); }
  struct sock_filter *prog = malloc((size_t)st.st_size);
  if (read(fd, prog, (size_t)st.st_size) != st.st_size) { perror(file); exit(3); }
  struct sock_fprog fprog = {(unsigned short)(st.st_size / sizeof *prog), prog};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0) {
    perror("install seccomp");
    exit(3);
  }
}

static int seccomp_check(int files, char **file) {
  for (int i = 0; i < files; i++) install(file[i]);
  const char *none = "/nonexistent-lid-probe";
  int null_fd = open("/dev/null", O_RDWR);
  TRY("mount", SYS_mount, (long)"none", (long)none, (long)"tmpfs", 0);
  TRY("umount2", SYS_umount2, (long)none, 0);
  TRY("pivot_root", SYS_pivot_root, (long)none, (long)none);
  TRY("chroot", SYS_chroot, (long)none);
  TRY("setns", SYS_setns, -1, 0);
  TRY("open_tree", SYS_open_tree, -1, (long)none, 0);
  TRY("move_mount", SYS_move_mount, -1, (long)none, -1, (long)none, 0);
  TRY("fsopen", SYS_fsopen, (long)"lid-no-such-fs", 0);
  TRY("fsconfig", SYS_fsconfig, -1, 0, 0, 0, 0);
  TRY("fsmount", SYS_fsmount, -1, 0, 0);
  TRY("fspick", SYS_fspick, -1, (long)none, 0);
  TRY("mount_setattr", SYS_mount_setattr, -1, (long)none, 0, 0, 0);
  TRY("open_by_handle_at", SYS_open_by_handle_at, -1, 0, 0);
  TRY("name_to_handle_at", SYS_name_to_handle_at, -1, (long)none, 0, 0, 0);
  TRY("process_vm_readv", SYS_process_vm_readv, 0x7ffffff0, 0, 0, 0, 0, 0);
  TRY("process_vm_writev", SYS_process_vm_writev, 0x7ffffff0, 0, 0, 0, 0, 0);
  TRY("keyctl", SYS_keyctl, 99999, 0, 0, 0);
  TRY("add_key", SYS_add_key, 0, 0, 0, 0, 0);
  TRY("request_key", SYS_request_key, 0, 0, 0, 0);
  TRY("bpf", SYS_bpf, 99999, 0, 0);
  TRY("perf_event_open", SYS_perf_event_open, 0, 0, -1, -1, 0);
  TRY("userfaultfd", SYS_userfaultfd, 0xffff);
  TRY("io_uring_setup", SYS_io_uring_setup, 0, 0);
  TRY("io_uring_enter", SYS_io_uring_enter, -1, 0, 0, 0, 0, 0);
  TRY("io_uring_register", SYS_io_uring_register, -1, 0, 0, 0);
  TRY("ptrace", SYS_ptrace, 99999, 0, 0, 0);
  TRY("kexec_load", SYS_kexec_load, 0, 0, 0, 0xffff0000); /* an unknown architecture: refused before anything */
  TRY("kexec_file_load", SYS_kexec_file_load, -1, -1, 0, 0, 0);
  TRY("init_module", SYS_init_module, 0, 0, (long)"");
  TRY("finit_module", SYS_finit_module, -1, (long)"", 0);
  TRY("delete_module", SYS_delete_module, (long)"lid_no_such_module", 0);
  TRY("acct", SYS_acct, (long)none);
  TRY("swapon", SYS_swapon, (long)none, 0);
  TRY("swapoff", SYS_swapoff, (long)none);
  TRY("reboot", SYS_reboot, 0, 0, 0, 0); /* bad magic: refused before anything */
  TRY("syslog", SYS_syslog, 10, 0, 0);   /* SYSLOG_ACTION_SIZE_BUFFER: only reads the size */
  TRY("uselib", SYS_uselib, (long)none);
  TRY("lookup_dcookie", SYS_lookup_dcookie, 0, 0, 0);
  TRY("quotactl", SYS_quotactl, 0, 0, 0, 0);
  TRY("iopl", SYS_iopl, 5);
  TRY("ioperm", SYS_ioperm, 0x10000, 1, 0);
  TRY("clone3", SYS_clone3, 0, 0);
  TRY("ioctl_TIOCSTI", SYS_ioctl, null_fd, TIOCSTI, (long)"x");
  TRY("ioctl_TIOCLINUX", SYS_ioctl, null_fd, TIOCLINUX, (long)"x");
  TRY("ioctl_TCGETS", SYS_ioctl, null_fd, TCGETS, 0); /* allowed: ENOTTY either way */
  errno = 0;
  long vsock = syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
  result("socket_vsock", vsock);
  if (vsock >= 0) close((int)vsock);
  TRY("socket_unix", SYS_socket, AF_UNIX, SOCK_STREAM, 0); /* allowed */
  TRY("personality_query", SYS_personality, 0xffffffff); /* allowed */
  TRY("personality_addr_no_randomize", SYS_personality, 0x0040000);
  syscall(SYS_personality, 0);
  TRY("getpid", SYS_getpid);
  try_in_child("unshare_user", SYS_unshare, CLONE_NEWUSER);
  try_in_child("clone_user", SYS_clone, CLONE_NEWUSER | SIGCHLD);
  return 0;
}

static int tty(void) {
  int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
  printf("open_dev_tty %s\n", fd < 0 ? strerrorname_np(errno) : "OK");
  if (fd >= 0) {
    const char leak[] = "LID-TTY-LEAK\n";
    printf("write_dev_tty %s\n", write(fd, leak, sizeof leak - 1) < 0 ? strerrorname_np(errno) : "OK");
  }
  const char *inject = "LIDINJECT";
  int fds[11];
  for (int i = 0; i < 10; i++) fds[i] = i;
  fds[10] = fd;
  for (int i = 0; i < 11; i++) {
    if (fds[i] < 0) continue;
    const char *outcome = "OK";
    for (const char *c = inject; *c; c++)
      if (ioctl(fds[i], TIOCSTI, c) != 0) {
        outcome = strerrorname_np(errno);
        break;
      }
    printf("tiocsti_%s %s\n", i == 10 ? "dev_tty" : (char[]){(char)('0' + i), 0}, outcome);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  if (!strcmp(argv[1], "fds")) {
    for (int fd = 0; fd < 4096; fd++)
      if (fcntl(fd, F_GETFD) != -1) printf("%d\n", fd);
    return 0;
  }
  if (!strcmp(argv[1], "spin") && argc > 2) {
    double until = atof(argv[2]);
    volatile unsigned long x = 0;
    while (cpu_ms() < until) for (int i = 0; i < 100000; i++) x += i;
    return 0;
  }
  if (!strcmp(argv[1], "alloc") && argc > 2) {
    size_t bytes = (size_t)atol(argv[2]) << 20;
    char *p = malloc(bytes);
    if (!p) return 3;
    for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    printf("touched\n");
    return 0;
  }
  if (!strcmp(argv[1], "segv")) {
    volatile int *p = NULL;
    return *p;
  }
  if (!strcmp(argv[1], "syscalls")) {
    try_call("unshare_user", SYS_unshare, CLONE_NEWUSER, 0, 0, 0);
    try_call("clone_user", SYS_clone, CLONE_NEWUSER | 0x11 /* SIGCHLD */, 0, 0, 0);
    try_call("keyctl", SYS_keyctl, 99999, 0, 0, 0);
    try_call("bpf", SYS_bpf, 99999, 0, 0, 0);
    try_call("perf_event_open", SYS_perf_event_open, 0, 0, -1, -1);
    try_call("userfaultfd", SYS_userfaultfd, 0xffff, 0, 0, 0);
    try_call("io_uring_setup", SYS_io_uring_setup, 0, 0, 0, 0);
    try_call("ptrace", SYS_ptrace, 99999, 0, 0, 0);
    try_call("kexec_load", SYS_kexec_load, 0, 0, 0, 0);
    try_call("init_module", SYS_init_module, 0, 0, 0, 0);
    try_call("finit_module", SYS_finit_module, -1, 0, 0, 0);
    try_call("delete_module", SYS_delete_module, 0, 0, 0, 0);
    try_call("mount", SYS_mount, (long)"none", (long)"/tmp", (long)"tmpfs", 0);
    try_call("getpid", SYS_getpid, 0, 0, 0, 0);
    return 0;
  }
  if (!strcmp(argv[1], "seccomp")) return seccomp_check(argc - 2, argv + 2);
  if (!strcmp(argv[1], "tty")) return tty();
  return 2;
}
