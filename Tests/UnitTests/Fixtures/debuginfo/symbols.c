// Fixture for DebugInfoELFTests and DebugInfoSymbolizerTests: symbols of each kind and binding, a
// local alias of a global function, and code inlined into another function. The tests find lines
// by the MARK comments.
int global_counter = 7;
static int local_counter;

__attribute__((noipa)) int global_function(int x) {
    return x * 3 + local_counter; /* MARK:global-function */
}

static int local_alias(int) __attribute__((alias("global_function")));

__attribute__((noipa)) static int local_function(int x) {
    local_counter += x;
    return x + 1;
}

__attribute__((weak, noipa)) int weak_function(int x) {
    return x - 1;
}

static inline __attribute__((always_inline)) int inlined_helper(int x) {
    return x * x * global_counter; /* MARK:inlined-body */
}

__attribute__((noipa)) int uses_inline(int x) {
    return inlined_helper(x) + 5;
}

int main(int argc, char **argv) {
    (void)argv;
    return global_function(argc) + local_alias(argc) + local_function(argc) + weak_function(argc) +
           uses_inline(argc);
}
