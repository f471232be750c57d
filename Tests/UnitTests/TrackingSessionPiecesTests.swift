import Benchmarks
import Foundation
import Testing
@testable import Monitor

/// The pieces of the monitor session and benchmarks that need no guest.
@Suite struct TrackingSessionPiecesTests {
    @Test func periodicScansRepeatTheirLineOnlyEverySixthTimeWhileFindingsStay() {
        var throttle = ScanLineThrottle()
        let said = (0..<13).map { _ in throttle.shouldSay(findings: "1 process(es): 1 direct leak(s)", periodic: true) }
        #expect(said == [true, false, false, false, false, false, true, false, false, false, false, false, true])
    }

    @Test func changedFindingsAndAskedForScansAreAlwaysSaid() {
        var throttle = ScanLineThrottle()
        let said = [("a", true), ("a", true), ("b", true), ("b", false), ("b", false), ("b", true)].map {
            throttle.shouldSay(findings: $0.0, periodic: $0.1)
        }
        // An asked-for scan is said, and restarts the count of quiet periodic ones.
        #expect(said == [true, false, true, true, true, false])
    }

    @Test func transcriptWaiterWakesOnTheMarkerAndOnClose() {
        let transcript = ConsoleTranscript()
        let seen = DispatchSemaphore(value: 0)
        let result = ResultBox()
        Thread {
            result.first = transcript.wait(for: "NEXT ", occurrences: 2)
            result.second = transcript.wait(for: "never")
            seen.signal()
        }.start()
        transcript.append(Array("boot\nNEXT 1\n".utf8))
        transcript.append(Array("NE".utf8))
        transcript.append(Array("XT 2\n".utf8))
        usleep(50_000)
        transcript.close()
        #expect(seen.wait(timeout: .now() + 10) == .success)
        #expect(result.first == true)
        #expect(result.second == false)
        #expect(transcript.text == "boot\nNEXT 1\nNEXT 2\n")
    }
}

/// Results handed back from the waiting thread (read after the semaphore).
private final class ResultBox: @unchecked Sendable {
    var first: Bool?
    var second: Bool?
}
