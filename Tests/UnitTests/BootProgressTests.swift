@testable import leakvisor
import Synchronization
import Testing

/// Boot progress off a terminal: one plain line per stage, in order, nothing after user space
/// (the in-place status line on a terminal is checked by the suite's cold boot under `script`).
struct BootProgressTests {
    final class Recorder: Sendable {
        let lines = Mutex<[String]>([])
        let statuses = Mutex<[String?]>([])
        func sink(onTerminal: Bool) -> BootProgressSink {
            BootProgressSink(onTerminal: onTerminal, say: { line in self.lines.withLock { $0.append(line) } },
                             showStatus: { status in
                                 guard onTerminal else { return false }
                                 self.statuses.withLock { $0.append(status) }
                                 return true
                             }, retireStatus: {})
        }
    }

    @Test func offATerminalEachStageIsOnePlainLine() {
        let recorder = Recorder()
        let progress = BootProgress(sink: recorder.sink(onTerminal: false))
        progress.reached(.kernelStarting)
        progress.reached(.userSpaceReached)
        progress.reached(.userSpaceReached)
        progress.stop()
        let lines = recorder.lines.withLock { $0 }
        #expect(lines.count == 3, "\(lines)")
        #expect(lines.prefix(2) == ["boot: loading the kernel and initramfs", "boot: kernel starting"])
        #expect(lines.last?.hasPrefix("boot: user space reached after ") == true)
        #expect(recorder.statuses.withLock { $0 }.isEmpty)
    }

    @Test func onATerminalTheStagesAreOneStatusLineClearedAtUserSpace() {
        let recorder = Recorder()
        let progress = BootProgress(sink: recorder.sink(onTerminal: true))
        progress.reached(.kernelStarting)
        progress.reached(.userSpaceReached)
        let statuses = recorder.statuses.withLock { $0 }
        #expect(statuses == ["boot: loading the kernel and initramfs", "boot: kernel starting", nil], "\(statuses)")
        #expect(recorder.lines.withLock { $0 }.count == 1, "only the user-space line is a plain line")
        progress.stop()
    }

    @Test func aRestoreShowsNothing() {
        let recorder = Recorder()
        let progress = BootProgress(restoring: true, sink: recorder.sink(onTerminal: false))
        progress.reached(.userSpaceReached)
        progress.stop()
        #expect(recorder.lines.withLock { $0 }.isEmpty)
    }

    @Test func durationsReadAsAPersonWouldSayThem() {
        #expect(BootProgress.duration(42.4) == "42 s")
        #expect(BootProgress.duration(483) == "8 min 03 s")
    }
}
