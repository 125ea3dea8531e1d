/*
 * probe: a static test program placed inside sandboxes to observe what busybox cannot.
 *   probe fds            print the open file descriptors, one per line
 *   probe spin MS        burn MS milliseconds of this process's own CPU time, then exit 0
 *   probe alloc MB       allocate MB mebibytes, touch every page, print "touched", exit 0
 *   probe segv           dereference NULL (a real crash: the kernel's SIGSEGV reaches even a namespace's PID 1)
 *   probe syscalls       try each call the seccomp filter must deny, with harmless bad arguments, and print
 *                        "NAME ERRNO_NAME" (EPERM means the filter answered: unfiltered, these arguments give
 *                        EINVAL, EFAULT, EBADF, ESRCH and the like)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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
  return 2;
}
