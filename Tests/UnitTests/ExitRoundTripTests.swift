import Foundation
import Testing
import VMM

/// The bare-exit probe the tracking benchmark compares trap costs with runs on the real /dev/kvm.
@Suite(.enabled(if: FileManager.default.isWritableFile(atPath: "/dev/kvm"), "needs /dev/kvm"))
struct ExitRoundTripTests {
    @Test func aPortWriteLoopExitsEveryIteration() throws {
        let microseconds = try ExitRoundTrip.measure(iterations: 300)
        // A round trip costs something and is far below a millisecond on any host.
        #expect(microseconds > 0.05 && microseconds < 1000, "\(microseconds) µs")
    }
}
