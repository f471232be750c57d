/*
 * lv-payload: wait for the LeakVisor monitor's payload and write it to stdout.
 *
 * The payload (a newc cpio archive: /leakvisor/command, --add files, /leakvisor/time) is
 * handed over after the boot, or after a snapshot restore, through the monitor's control
 * page (MMIO at guest-physical 0xD0000000, through /dev/mem). 64-bit registers:
 *   0x10 read   state: 'LVPL' in the high 32 bits; low bits 1 = a payload is ready, 0 = wait
 *   0x18 read   payload length in bytes
 *   0x20 write  user address of the next chunk's buffer
 *   0x28 write  chunk length: the monitor copies the next bytes of the payload into the
 *               buffer (through this process's page tables; the pages must be present
 *               and writable)
 *   0x30 read   result of the last copy: bytes copied, or a negative error
 *   0x38 write  the payload was taken (the monitor starts allocation tracking here)
 * Exit status: 0 payload written, 2 no monitor channel (not a LeakVisor guest), 1 error.
 * Refuses unless the hostname is "leakvisor" (set by /init) or --force is given.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define LV_CONTROL_PAGE 0xD0000000UL
#define LV_STATE 0x10
#define LV_LENGTH 0x18
#define LV_DESTINATION 0x20
#define LV_COPY 0x28
#define LV_RESULT 0x30
#define LV_TAKEN 0x38
#define LV_MAGIC 0x4C56504CULL /* "LVPL" */
#define CHUNK (1u << 20)

static unsigned char buffer[CHUNK];

static uint64_t get(volatile unsigned char *page, unsigned offset) {
    return *(volatile uint64_t *)(page + offset);
}

static void put(volatile unsigned char *page, unsigned offset, uint64_t value) {
    *(volatile uint64_t *)(page + offset) = value;
}

static int write_all(const unsigned char *bytes, size_t count) {
    while (count > 0) {
        ssize_t n = write(STDOUT_FILENO, bytes, count);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        bytes += n;
        count -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    int force = argc > 1 && strcmp(argv[1], "--force") == 0;
    struct utsname u;
    if (!force && (uname(&u) != 0 || strcmp(u.nodename, "leakvisor") != 0)) {
        fprintf(stderr, "lv-payload: not in the LeakVisor guest (hostname is not 'leakvisor'); use --force\n");
        return 2;
    }
    int fd = open("/dev/mem", O_RDWR | O_SYNC);
    if (fd < 0) {
        fprintf(stderr, "lv-payload: cannot open /dev/mem: %s\n", strerror(errno));
        return 2;
    }
    volatile unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, LV_CONTROL_PAGE);
    close(fd);
    if (page == MAP_FAILED) {
        fprintf(stderr, "lv-payload: cannot map the control page: %s\n", strerror(errno));
        return 2;
    }
    /* Wait until the monitor has a payload (after a cold boot it may first save a snapshot). */
    struct timespec pause = {0, 500 * 1000};
    for (;;) {
        uint64_t state = get(page, LV_STATE);
        if (state >> 32 != LV_MAGIC) return 2;
        if (state & 1) break;
        nanosleep(&pause, NULL);
    }
    uint64_t length = get(page, LV_LENGTH);
    uint64_t done = 0;
    while (done < length) {
        uint64_t want = length - done < CHUNK ? length - done : CHUNK;
        memset(buffer, 0, want); /* every page present and writable before the monitor copies */
        put(page, LV_DESTINATION, (uint64_t)(uintptr_t)buffer);
        put(page, LV_COPY, want);
        int64_t got = (int64_t)get(page, LV_RESULT);
        if (got <= 0 || (uint64_t)got > want) {
            fprintf(stderr, "lv-payload: the monitor could not copy the payload (%lld)\n", (long long)got);
            return 1;
        }
        if (write_all(buffer, (size_t)got) != 0) {
            fprintf(stderr, "lv-payload: write: %s\n", strerror(errno));
            return 1;
        }
        done += (uint64_t)got;
    }
    put(page, LV_TAKEN, 1);
    return 0;
}
