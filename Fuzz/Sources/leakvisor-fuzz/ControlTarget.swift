import Control
import Foundation

/// The control protocol's decoding: a request line and an answer line through `ControlWire`, the
/// bounded functions the monitor and the client read the socket with, re-encoded when they decode.
enum ControlTarget {
    static let target = FuzzTarget(name: "control") { input in
        let line = input.bytes
        if let request = try? ControlWire.decodeRequest(line) {
            _ = try? ControlWire.encode(request)
        }
        if let response = try? ControlWire.decodeResponse(line) {
            _ = try? JSONEncoder().encode(response)
        }
    }
}
