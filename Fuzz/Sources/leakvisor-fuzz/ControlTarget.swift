import Control
import Foundation

/// The control protocol's decoding: a request line and a response line, as `JSONDecoder` reads
/// them from the socket, re-encoded when they decode.
enum ControlTarget {
    static let target = FuzzTarget(name: "control") { input in
        let data = Data(input.bytes)
        let decoder = JSONDecoder()
        if let request = try? decoder.decode(ControlRequest.self, from: data) {
            _ = try? JSONEncoder().encode(request)
        }
        if let response = try? decoder.decode(ControlResponse.self, from: data) {
            _ = try? JSONEncoder().encode(response)
        }
    }
}
