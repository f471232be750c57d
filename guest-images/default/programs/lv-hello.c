/* lv-hello [ARGS...]: greets from guest user space and echoes its argv. */
#include <stdio.h>

int main(int argc, char **argv) {
    printf("hello from guest user space\n");
    for (int i = 0; i < argc; i++) printf("argv[%d] = %s\n", i, argv[i]);
    return 0;
}
