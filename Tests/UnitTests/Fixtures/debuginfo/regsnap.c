// Test helper for DebugInfoUnwindTests: stops process PID with ptrace (PTRACE_SEIZE +
// PTRACE_INTERRUPT), prints its general registers and the bounds of its [stack] mapping as
// "name 0xvalue" lines, copies the [stack] mapping into OUTFILE, and lets the process run on.
// Usage: regsnap PID OUTFILE
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what) {
    perror(what);
    return 1;
}

static int find_stack(pid_t pid, unsigned long *start, unsigned long *end) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *maps = fopen(path, "r");
    if (maps == NULL) return -1;
    char line[4096];
    int found = -1;
    while (fgets(line, sizeof line, maps) != NULL) {
        if (strstr(line, "[stack]") != NULL && sscanf(line, "%lx-%lx", start, end) == 2) {
            found = 0;
            break;
        }
    }
    fclose(maps);
    return found;
}

static int copy_stack(pid_t pid, unsigned long start, unsigned long end, const char *out) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int mem = open(path, O_RDONLY);
    if (mem < 0) return fail("open mem");
    size_t size = end - start;
    char *buffer = malloc(size);
    if (buffer == NULL) return fail("malloc");
    if (pread(mem, buffer, size, (off_t)start) != (ssize_t)size) return fail("pread mem");
    close(mem);
    FILE *file = fopen(out, "wb");
    if (file == NULL || fwrite(buffer, 1, size, file) != size || fclose(file) != 0) return fail("write snapshot");
    free(buffer);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: regsnap PID OUTFILE\n");
        return 2;
    }
    pid_t pid = (pid_t)atoi(argv[1]);
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) return fail("PTRACE_SEIZE");
    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) return fail("PTRACE_INTERRUPT");
    int status = 0;
    if (waitpid(pid, &status, __WALL) != pid) return fail("waitpid");
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, pid, 0, &r) != 0) return fail("PTRACE_GETREGS");
    unsigned long start = 0, end = 0;
    if (find_stack(pid, &start, &end) != 0) return fail("no [stack] mapping");
    if (copy_stack(pid, start, end, argv[2]) != 0) return 1;
    // DWARF register order: rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip.
    unsigned long long values[] = {r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9,
                                   r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip};
    const char *names[] = {"rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9",
                           "r10", "r11", "r12", "r13", "r14", "r15", "rip"};
    for (int i = 0; i < 17; i++) printf("%s 0x%llx\n", names[i], values[i]);
    printf("stack_start 0x%lx\nstack_end 0x%lx\n", start, end);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return 0;
}
