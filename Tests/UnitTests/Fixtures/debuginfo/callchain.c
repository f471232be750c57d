// Fixture for DebugInfoUnwindTests: main -> outer -> middle -> inner, which blocks in read() on
// stdin. The tests find the call-site lines by the MARK comments: keep each on its call's line.
// noipa keeps every function out of line, unspecialised and called (not inlined, cloned or merged);
// the work after each call keeps the calls from becoming tail calls.
#include <unistd.h>

volatile int sink;

__attribute__((noipa)) int inner(int fd) {
    char byte = 0;
    ssize_t count = read(fd, &byte, 1); /* MARK:inner-read */
    sink += byte;
    return (int)count + 1;
}

__attribute__((noipa)) int middle(int fd) {
    int result = inner(fd); /* MARK:middle-call */
    sink += result;
    return result + 2;
}

__attribute__((noipa)) int outer(int fd) {
    int result = middle(fd); /* MARK:outer-call */
    sink += result;
    return result + 3;
}

int main(void) {
    int result = outer(0); /* MARK:main-call */
    return result == 0;
}
