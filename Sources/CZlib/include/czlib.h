#ifndef CZLIB_H
#define CZLIB_H
// Thin unsafe layer over zlib: what Swift cannot call directly (deflateInit2 is a macro).
#include <zlib.h>

/// deflateInit2 for a gzip stream (header and CRC-32 trailer) at `level`.
int czlib_deflate_init_gzip(z_stream *stream, int level);
#endif
