#include "czlib.h"

int czlib_deflate_init_gzip(z_stream *stream, int level) {
    // windowBits 15 + 16: the gzip wrapper instead of zlib's.
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
