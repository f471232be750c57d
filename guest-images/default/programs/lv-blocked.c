// lv-blocked: prints its PID, then blocks forever in a known call chain
// (main -> lv_outer -> lv_middle -> lv_inner -> read), so that stack
// introspection can be checked against source lines. The image builds it
// with and without frame pointers. The LV-MARK comments name the lines.
#include <stdio.h>
#include <unistd.h>

static int fds[2];

__attribute__((noinline)) int lv_inner(int depth)
{
    char c;
    ssize_t n = read(fds[0], &c, 1); /* LV-MARK inner-read */
    return (int)n + depth;
}

__attribute__((noinline)) int lv_middle(int depth)
{
    int r = lv_inner(depth + 1); /* LV-MARK middle-call */
    return r * 3;
}

__attribute__((noinline)) int lv_outer(int depth)
{
    int r = lv_middle(depth + 1); /* LV-MARK outer-call */
    return r + 7;
}

int main(void)
{
    if (pipe(fds) != 0)
        return 1;
    printf("lv-blocked %d ready\n", (int)getpid());
    fflush(stdout);
    int r = lv_outer(0); /* LV-MARK main-call */
    return r;
}
