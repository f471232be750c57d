/*
 * lv-payload [--extract DIR [--keep FILE]]: wait for the LeakVisor monitor's payload and write it
 * to stdout, or with --extract unpack it under DIR itself (no cpio process to start: every process
 * costs time in the emulated guest kernel) and set the clock from its /leakvisor/time. --keep also
 * saves the archive to FILE when it holds leakvisor/root (a `leakvisor run --root` run).
 *
 * lv-payload --run-in-root DIR FILE (a --root run, after the virtio drivers are loaded): mounts the
 * ext4 device named in /leakvisor/root at DIR (read-only, with a tmpfs on DIR/leakvisor, when the
 * disk is), bind-mounts /proc, /sys and /dev (recursively: /dev/pts) into it, unpacks the archive
 * FILE there (/leakvisor and the --add files), then runs `sh /leakvisor/command` in a child that
 * moves the mount to / and chroots into it (as switch_root does: so the monitor sees the disk's
 * files at their own paths, e.g. /usr/lib/...). Waits for it, then syncs and detaches the disk (so
 * its writes reach the image) and exits with the command's status (128 + signal when killed), or
 * 125 when the root could not be entered.
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
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
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
static unsigned char *archive; /* --extract: the whole payload */

/* The newc header field at `at` (8 hex digits), or -1. */
static long hex8(const unsigned char *at) {
    long value = 0;
    for (int i = 0; i < 8; i++) {
        int c = at[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        value = value * 16 + d;
    }
    return value;
}

/* Whether `name` has a ".." component (it would leave the extraction root). */
static int has_parent_component(const char *name) {
    for (const char *p = name; *p;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

/* Creates the parent directories of `path` (inside the extraction root). */
static void make_parents(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(path, 0755);
        *p = '/';
    }
}

/* Unpacks a newc archive of `length` bytes under `root`: regular files, directories and
 * symbolic links; names with ".." components are refused. Returns 0 or -1. */
static int extract(const unsigned char *data, size_t length, const char *root) {
    size_t at = 0;
    while (at + 110 <= length) {
        const unsigned char *h = data + at;
        if (memcmp(h, "070701", 6) != 0) return -1;
        long mode = hex8(h + 14), size = hex8(h + 54), namesize = hex8(h + 94), mtime = hex8(h + 46);
        if (mode < 0 || size < 0 || namesize <= 0 || mtime < 0) return -1;
        size_t name_at = at + 110, data_at = (name_at + (size_t)namesize + 3) & ~(size_t)3;
        if (data_at > length || (size_t)size > length - data_at) return -1;
        const char *name = (const char *)data + name_at;
        if (name[namesize - 1] != 0) return -1;
        if (strcmp(name, "TRAILER!!!") == 0) return 0;
        while (*name == '/') name++;
        if (has_parent_component(name)) return -1;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", root, name) >= (int)sizeof path) return -1;
        make_parents(path);
        const unsigned char *body = data + data_at;
        switch (mode & S_IFMT) {
        case S_IFDIR:
            mkdir(path, (mode_t)(mode & 07777));
            break;
        case S_IFLNK: {
            char target[4096];
            if ((size_t)size >= sizeof target) return -1;
            memcpy(target, body, (size_t)size);
            target[size] = 0;
            unlink(path);
            if (symlink(target, path) != 0) return -1;
            break;
        }
        case S_IFREG: {
            unlink(path);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)(mode & 07777));
            if (fd < 0) return -1;
            for (size_t done = 0; done < (size_t)size;) {
                ssize_t n = write(fd, body + done, (size_t)size - done);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) { close(fd); return -1; }
                done += (size_t)n;
            }
            fchmod(fd, (mode_t)(mode & 07777));
            close(fd);
            break;
        }
        default:
            break;
        }
        at = (data_at + (size_t)size + 3) & ~(size_t)3;
    }
    return -1;
}

/* Sets the clock from DIR/leakvisor/time (seconds since the epoch), if there. */
static void set_clock(const char *root) {
    char path[4096], text[32] = {0};
    snprintf(path, sizeof path, "%s/leakvisor/time", root);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return;
    struct timeval now = {strtol(text, NULL, 10), 0};
    if (now.tv_sec > 0) settimeofday(&now, NULL);
}

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

/* Writes `length` bytes to a new file at `path`; 0 on success. */
static int save_file(const char *path, const unsigned char *data, size_t length) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    for (size_t done = 0; done < length;) {
        ssize_t n = write(fd, data + done, length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { close(fd); return -1; }
        done += (size_t)n;
    }
    return close(fd);
}

/* Reads the whole file at `path` into a new buffer; NULL on failure. */
static unsigned char *load_file(const char *path, size_t *length) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0) { close(fd); return NULL; }
    unsigned char *data = malloc((size_t)st.st_size + 1);
    size_t done = 0;
    while (data && done < (size_t)st.st_size) {
        ssize_t n = read(fd, data + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { free(data); data = NULL; break; }
        done += (size_t)n;
    }
    close(fd);
    *length = done;
    return data;
}

static int fail(const char *what, const char *path) {
    fprintf(stderr, "lv-payload: --root: %s %s: %s\n", what, path, strerror(errno));
    return 125;
}

/* Bind-mounts `source` at DIR`source` (made if missing). */
static int bind_into(const char *dir, const char *source, unsigned long flags) {
    char target[4096];
    snprintf(target, sizeof target, "%s%s", dir, source);
    mkdir(target, 0755);
    if (mount(source, target, NULL, MS_BIND | flags, NULL) != 0) return fail("cannot bind-mount", target);
    return 0;
}

/* --run-in-root DIR FILE: see the top of this file. */
static int run_in_root(const char *dir, const char *archive_path) {
    char device[256] = {0};
    int fd = open("/leakvisor/root", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, device, sizeof device - 1);
    if (fd >= 0) close(fd);
    if (n <= 0) return fail("cannot read", "/leakvisor/root");
    device[strcspn(device, "\n")] = 0;
    mkdir(dir, 0755);
    /* The device node appears when virtio_blk has probed the disk: wait up to 10 s for it. */
    int readonly = 0, tries = 0;
    struct timespec pause = {0, 20 * 1000 * 1000};
    while (mount(device, dir, "ext4", 0, NULL) != 0) {
        if (errno == EROFS || errno == EACCES) {
            if (mount(device, dir, "ext4", MS_RDONLY, NULL) != 0) return fail("cannot mount (ext4, read-only)", device);
            readonly = 1;
            break;
        }
        if (errno != ENOENT && errno != ENXIO && errno != ENODEV) return fail("cannot mount (ext4)", device);
        if (++tries > 500) return fail("no disk at", device);
        nanosleep(&pause, NULL);
    }
    char path[4096];
    if (readonly) {
        snprintf(path, sizeof path, "%s/leakvisor", dir);
        if (mount("tmpfs", path, "tmpfs", 0, "mode=0755") != 0)
            return fail("read-only root disk: cannot mount a tmpfs on (the image needs a /leakvisor directory)", path);
    }
    if (bind_into(dir, "/proc", 0) || bind_into(dir, "/sys", 0) || bind_into(dir, "/dev", MS_REC)) return 125;
    size_t length = 0;
    unsigned char *data = load_file(archive_path, &length);
    if (!data) return fail("cannot read", archive_path);
    if (extract(data, length, dir) != 0) {
        fprintf(stderr, "lv-payload: --root: cannot write /leakvisor and the --add files into %s%s\n", device,
                readonly ? " (read-only: only /leakvisor can be written)" : "");
        return 125;
    }
    free(data);
    pid_t child = fork();
    if (child < 0) return fail("cannot fork for", dir);
    if (child == 0) {
        if (chdir(dir) != 0 || mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0) _exit(fail("cannot switch to", dir));
        if (chdir("/root") != 0 && chdir("/") != 0) _exit(fail("cannot enter", "/"));
        execl("/bin/sh", "sh", "/leakvisor/command", (char *)NULL);
        fail("cannot run /bin/sh in", device);
        _exit(127);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    sync();
    /* The disk is mounted over / now (its submounts too): detach it all, which shuts the file
     * system down once nothing uses it. */
    if (umount2("/", MNT_DETACH) != 0) fail("cannot unmount", device);
    sync();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv) {
    int force = 0;
    const char *root = NULL, *keep = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0) force = 1;
        else if (strcmp(argv[i], "--extract") == 0 && i + 1 < argc) root = argv[++i];
        else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc) keep = argv[++i];
        else if (strcmp(argv[i], "--run-in-root") == 0 && i + 2 < argc) return run_in_root(argv[i + 1], argv[i + 2]);
    }
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
    if (root) {
        archive = malloc(length ? length : 1);
        if (!archive) {
            fprintf(stderr, "lv-payload: no memory for a payload of %llu bytes\n", (unsigned long long)length);
            return 1;
        }
    }
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
        if (root) memcpy(archive + done, buffer, (size_t)got);
        else if (write_all(buffer, (size_t)got) != 0) {
            fprintf(stderr, "lv-payload: write: %s\n", strerror(errno));
            return 1;
        }
        done += (uint64_t)got;
    }
    if (root) {
        if (length > 0 && extract(archive, length, root) != 0) {
            fprintf(stderr, "lv-payload: the payload is not a newc archive this tool unpacks\n");
            return 1;
        }
        set_clock(root);
        char marker[4096];
        snprintf(marker, sizeof marker, "%s/leakvisor/root", root);
        if (keep && access(marker, F_OK) == 0 && save_file(keep, archive, (size_t)length) != 0) {
            fprintf(stderr, "lv-payload: cannot save the payload to %s: %s\n", keep, strerror(errno));
            return 1;
        }
    }
    put(page, LV_TAKEN, 1);
    return 0;
}
