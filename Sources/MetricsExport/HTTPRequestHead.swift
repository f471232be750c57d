import Foundation

/// The request line of an HTTP/1.x request, parsed from untrusted bytes: only what the metrics
/// server answers on (the method, the path and the `Accept` header); other headers are skipped.
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    /// The target without its query string.
    public var path: String
    /// The `Accept` header's value (the first one), if any.
    public var accept: String?

    public init(method: String, path: String, accept: String? = nil) {
        self.method = method; self.path = path; self.accept = accept
    }

    /// What a client's bytes say so far.
    public enum Parse: Sendable, Equatable {
        /// The head is not complete yet (no empty line).
        case incomplete
        case request(HTTPRequestHead)
        /// Not an HTTP/1.x request line.
        case malformed
    }

    /// Parses `bytes` once they hold the whole head (up to the first empty line).
    public static func parse(_ bytes: [UInt8]) -> Parse {
        guard let end = headEnd(bytes) else { return .incomplete }
        let lineEnd = bytes[..<end].firstIndex(of: UInt8(ascii: "\r")) ?? bytes[..<end].firstIndex(of: UInt8(ascii: "\n")) ?? end
        let parts = bytes[..<lineEnd].split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, let version = String(validating: parts[2], as: UTF8.self), version.hasPrefix("HTTP/1."),
              let method = String(validating: parts[0], as: UTF8.self), !method.isEmpty,
              method.utf8.allSatisfy({ (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }),
              let target = String(validating: parts[1], as: UTF8.self), target.hasPrefix("/") else { return .malformed }
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        return .request(HTTPRequestHead(method: method, path: path, accept: header("accept", in: bytes[lineEnd..<end])))
    }

    /// The value of the first header `name` (lowercase) in the header lines `bytes`; nil when absent
    /// or not UTF-8.
    static func header(_ name: String, in bytes: ArraySlice<UInt8>) -> String? {
        for line in bytes.split(whereSeparator: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")),
                  let key = String(validating: line[..<colon], as: UTF8.self), key.lowercased() == name,
                  let value = String(validating: line[(colon + 1)...], as: UTF8.self) else { continue }
            return value.trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    /// The index where the head's terminating empty line starts (CRLF CRLF, or LF LF).
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == UInt8(ascii: "\n") && bytes[i + 1] == UInt8(ascii: "\n") { return i }
            if i + 3 < bytes.count, bytes[i] == UInt8(ascii: "\r"), bytes[i + 1] == UInt8(ascii: "\n"), bytes[i + 2] == UInt8(ascii: "\r"),
               bytes[i + 3] == UInt8(ascii: "\n") { return i }
            i += 1
        }
        return nil
    }
}
