/*
 * lv-exit STATUS: report the guest's exit status to the LeakVisor VMM.
 *
 * Writes STATUS (0-255) to the exit register of the monitor's control page
 * (MMIO at guest-physical 0xD0000000, through /dev/mem). Before that it drains
 * the console so that all output reaches the host. `lv-exit --mark` instead
 * tells the monitor that user space is running (boot-time measurement).
 * Refuses to touch the control page unless the hostname is
 * "leakvisor" (set by the guest /init) or --force is given, so running it on
 * the host is harmless. Exits with STATUS.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <termios.h>
#include <unistd.h>

#define LV_CONTROL_PAGE 0xD0000000UL
#define LV_EXIT_OFFSET 0x0
#define LV_USER_SPACE_OFFSET 0x8

static void on_alarm(int sig) { (void)sig; }

/* Wait (at most ~1 s) until the console has transmitted its output. */
static void drain_console(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: tcdrain returns EINTR */
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    fflush(NULL);
    for (int fd = 1; fd <= 2; fd++)
        if (isatty(fd)) tcdrain(fd);
    int c = open("/dev/console", O_WRONLY | O_NOCTTY | O_NONBLOCK);
    if (c >= 0) {
        tcdrain(c);
        close(c);
    }
    alarm(0);
}

/* Store the status in the monitor's control page (guest-physical LV_CONTROL_PAGE, an MMIO
 * page outside guest RAM) through /dev/mem. MMIO traps to the monitor from user mode on every
 * KVM host; port I/O from user mode faults on some (kvm_pvm). */
static int write_control(unsigned offset, unsigned value) {
    int fd = open("/dev/mem", O_RDWR | O_SYNC);
    if (fd < 0) return -1;
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, LV_CONTROL_PAGE);
    close(fd);
    if (page == MAP_FAILED) return -1;
    *(volatile unsigned *)((char *)page + offset) = value;
    munmap(page, 4096);
    return 0;
}

int main(int argc, char **argv) {
    int force = 0, status = 0, mark = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0) force = 1;
        else if (strcmp(argv[i], "--mark") == 0) mark = 1;
        else status = atoi(argv[i]) & 0xff;
    }
    struct utsname u;
    if (!force && (uname(&u) != 0 || strcmp(u.nodename, "leakvisor") != 0)) {
        fprintf(stderr, "lv-exit: not in the LeakVisor guest (hostname is not 'leakvisor'); "
                        "not writing the control page (use --force)\n");
        return status;
    }
    if (mark) return write_control(LV_USER_SPACE_OFFSET, 1) == 0 ? 0 : 1;
    drain_console();
    if (write_control(LV_EXIT_OFFSET, (unsigned)status) != 0) {
        fprintf(stderr, "lv-exit: cannot write the control page through /dev/mem: %s\n", strerror(errno));
        return status ? status : 1;
    }
    return status;
}
