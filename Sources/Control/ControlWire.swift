import Foundation

/// The control protocol on the wire: one JSON request line from the client, one JSON answer line
/// from the monitor. Decoding checks the length first, so it is bounded for any input.
public enum ControlWire {
    /// The longest request line the monitor reads; real requests are under 200 bytes.
    public static let maxRequestBytes = 16 << 10
    /// The longest answer line the client reads (a report of a large guest).
    public static let maxResponseBytes = 256 << 20

    /// A request line (without its newline) as the monitor receives it.
    public static func decodeRequest(_ line: [UInt8]) throws(ControlError) -> ControlRequest {
        try decode(line, limit: maxRequestBytes, what: "request")
    }

    /// An answer line (without its newline) as the client receives it.
    public static func decodeResponse(_ line: [UInt8]) throws(ControlError) -> ControlResponse {
        try decode(line, limit: maxResponseBytes, what: "answer")
    }

    /// One JSON line of at most `limit` bytes; anything else is a typed error.
    private static func decode<Message: Decodable>(_ line: [UInt8], limit: Int, what: String) throws(ControlError) -> Message {
        guard line.count <= limit else { throw .lineTooLong(limit: limit) }
        do {
            return try JSONDecoder().decode(Message.self, from: Data(line))
        } catch {
            throw .undecodable(what: what, underlying: error)
        }
    }

    /// A request as one line, newline included.
    public static func encode(_ request: ControlRequest) throws -> [UInt8] {
        [UInt8](try JSONEncoder().encode(request)) + [0x0A]
    }

    /// An answer as one line, newline included.
    public static func encode(_ response: ControlResponse) throws -> [UInt8] {
        [UInt8](try JSONEncoder().encode(response)) + [0x0A]
    }
}
