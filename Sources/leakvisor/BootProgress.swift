import Foundation
import Synchronization
import VMM

/// Where boot progress goes: the monitor's stderr (a status line in place when it is a terminal).
struct BootProgressSink: Sendable {
    var onTerminal: Bool
    /// One plain monitor line.
    var say: @Sendable (String) -> Void
    /// Shows (nil: clears) the status line; false when there is no terminal to show it on.
    var showStatus: @Sendable (String?) -> Bool
    /// Leaves the status line for the guest's console output.
    var retireStatus: @Sendable () -> Void

    static let monitor = BootProgressSink(onTerminal: MonitorOutput.toTerminal, say: { MonitorOutput.say($0) },
                                          showStatus: { MonitorOutput.showStatus($0) }, retireStatus: { MonitorOutput.retireStatus() })
}

/// Progress of a cold boot, which takes minutes on some hosts: on a terminal one status line
/// updated in place every second (stage and elapsed time), removed when user space is reached or
/// the guest's console starts writing; otherwise one plain line per stage.
final class BootProgress: Sendable {
    private struct State {
        var stage = "loading the kernel and initramfs"
        var timer: TimerBox?
        var done = false
    }

    /// A timer source, handed between threads only under the mutex.
    private final class TimerBox: @unchecked Sendable {
        let source: any DispatchSourceTimer
        init(_ source: any DispatchSourceTimer) { self.source = source }
    }

    private let state = Mutex(State())
    private let started = ContinuousClock.now
    private let sink: BootProgressSink
    private var onTerminal: Bool { sink.onTerminal }

    /// `restoring`: the machine continues a snapshot; no boot stages follow and nothing is shown.
    init(restoring: Bool = false, sink: BootProgressSink = .monitor) {
        self.sink = sink
        if restoring {
            state.withLock { $0.done = true }
        } else {
            show("loading the kernel and initramfs")
        }
    }

    /// The machine reached `stage` (called from any thread).
    func reached(_ stage: BootStage) {
        switch stage {
        case .kernelStarting:
            show("kernel starting")
            guard onTerminal else { return }
            let source = DispatchSource.makeTimerSource(queue: .global())
            source.schedule(deadline: .now() + 1, repeating: 1)
            source.setEventHandler { [weak self] in self?.tick() }
            source.resume()
            state.withLock { $0.timer = TimerBox(source) }
        case .userSpaceReached:
            let first = state.withLock { s -> Bool in
                guard !s.done else { return false }
                s.done = true
                s.timer?.source.cancel()
                s.timer = nil
                return true
            }
            guard first else { return }
            if onTerminal { _ = sink.showStatus(nil) }
            sink.say("boot: user space reached after \(Self.duration(elapsed))")
        }
    }

    /// The guest's console is about to write: the terminal is its now.
    func consoleWillWrite() {
        guard onTerminal else { return }
        sink.retireStatus()
        state.withLock { s in
            s.timer?.source.cancel()
            s.timer = nil
        }
    }

    /// Stops the updates (the run ended).
    func stop() {
        state.withLock { s in
            s.done = true
            s.timer?.source.cancel()
            s.timer = nil
        }
        if onTerminal { _ = sink.showStatus(nil) }
    }

    private var elapsed: Double { (ContinuousClock.now - started) / .seconds(1) }

    private func show(_ stage: String) {
        let done = state.withLock { s -> Bool in
            s.stage = stage
            return s.done
        }
        guard !done else { return }
        if !onTerminal || !sink.showStatus("boot: \(stage)") { sink.say("boot: \(stage)") }
    }

    private func tick() {
        let (stage, done) = state.withLock { ($0.stage, $0.done) }
        guard !done else { return }
        let running = stage == "kernel starting" ? "kernel running" : stage
        _ = sink.showStatus("boot: \(running), \(Self.duration(elapsed))")
    }

    /// "42 s", "8 min 03 s".
    static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        return whole < 60 ? "\(whole) s" : String(format: "%d min %02d s", whole / 60, whole % 60)
    }
}
