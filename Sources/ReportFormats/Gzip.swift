import CZlib
import Foundation

/// gzip compression through zlib (pprof profiles are gzipped on disk).
enum Gzip {
    struct Failure: Error, CustomStringConvertible {
        var code: Int32
        var description: String { "zlib failed with code \(code)" }
    }

    static func compress(_ data: Data, level: Int32 = 6) throws -> Data {
        var stream = z_stream()
        var code = czlib_deflate_init_gzip(&stream, level)
        guard code == Z_OK else { throw Failure(code: code) }
        defer { deflateEnd(&stream) }
        var output = Data()
        var input = [UInt8](data)
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        try input.withUnsafeMutableBufferPointer { inputBytes in
            stream.next_in = inputBytes.baseAddress
            stream.avail_in = uInt(inputBytes.count)
            repeat {
                let produced: Int = buffer.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    code = deflate(&stream, Z_FINISH)
                    return out.count - Int(stream.avail_out)
                }
                guard code == Z_OK || code == Z_STREAM_END || code == Z_BUF_ERROR else { throw Failure(code: code) }
                output.append(contentsOf: buffer[..<produced])
            } while code != Z_STREAM_END
        }
        return output
    }
}
