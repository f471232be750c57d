import Control
import DebugInfo
import Foundation
import Introspection
import Testing

/// Errors from the layers below stay typed inside the errors that wrap them (a caller can tell
/// why), and print the same text as when they were flattened into strings.
@Suite struct TypedErrorTests {
    @Test func aMissingKernelImageKeepsTheFileError() throws {
        let path = "/nonexistent/vmlinux"
        #expect {
            try GuestKernel.load(vmlinux: path)
        } throws: { error in
            guard case IntrospectionError.kernelFile(path, .cannotOpen(path, ENOENT)) = error else { return false }
            return "\(error)" == "kernel image: \(path): cannot open '\(path)': No such file or directory"
        }
        #expect {
            try GuestKernel.loadedImage(vmlinux: path)
        } throws: { error in
            guard case IntrospectionError.kernelFile(path, .cannotOpen) = error else { return false }
            return true
        }
    }

    @Test func anUnreadableControlLineKeepsTheDecodingError() throws {
        #expect {
            try ControlWire.decodeRequest([0xFF, 0xFE, 0x00])
        } throws: { error in
            guard case ControlError.undecodable(what: "request", let underlying) = error, underlying is DecodingError else { return false }
            return "\(error)" == "control protocol: bad request: \(underlying)"
        }
    }
}
