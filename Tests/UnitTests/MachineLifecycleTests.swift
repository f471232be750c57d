import Foundation
import KVM
import Synchronization
import Testing
@testable import VMM

/// `Machine.run()` joins its vCPU threads (they used to be kicked for 100 ms and left running),
/// and its outcome and errors keep the typed failure while printing as before.
@Suite struct MachineLifecycleTests {
    @Test func joinWaitsUntilEveryThreadLeftItsLoop() {
        let threads = VCPUThreads()
        let stop = Mutex(false)
        let finished = Mutex(0)
        for id in 0..<3 {
            threads.start(id: id) {
                while !stop.withLock({ $0 }) { usleep(1000) }
                usleep(20_000)   // still busy after being told to stop
                finished.withLock { $0 += 1 }
            }
        }
        let kicks = Mutex(0)
        let notJoined = threads.join(timeout: 10) {
            kicks.withLock { $0 += 1 }
            stop.withLock { $0 = true }
        }
        #expect(notJoined.isEmpty)
        #expect(finished.withLock { $0 } == 3)
        #expect(kicks.withLock { $0 } >= 1)
    }

    @Test func joinGivesUpAfterTheTimeoutAndNamesTheThreadsLeft() {
        let threads = VCPUThreads()
        let release = DispatchSemaphore(value: 0)
        threads.start(id: 0) {}
        threads.start(id: 5) { release.wait() }
        let started = Date()
        let notJoined = threads.join(timeout: 0.2) {}
        #expect(notJoined == [5])
        #expect(Date().timeIntervalSince(started) >= 0.2)
        release.signal()
        #expect(threads.join(timeout: 10) {}.isEmpty)
    }

    @Test func endingPrintsAsTheEnumDidWithAStringPayload() {
        #expect("\(MachineOutcome.Ending.exited(status: 3))" == "exited(status: 3)")
        #expect("\(MachineOutcome.Ending.timedOut(seconds: 5))" == "timedOut(seconds: 5.0)")
        #expect("\(MachineOutcome.Ending.reset)" == "reset")
        let failure = VMMError.unhandledGuestEvent("vCPU 0: odd \"exit\"\nline")
        #expect("\(MachineOutcome.Ending.failed(failure))" == "failed(\"vCPU 0: odd \\\"exit\\\"\\nline\")")
    }

    @Test func unreadableVCPUStateKeepsTheKVMErrors() {
        let errors = [VCPUStateError(vcpu: 1, error: .ioctl(name: "KVM_GET_REGS", errno: EINTR))]
        let error = VMMError.vcpuStateUnreadable(errors)
        #expect(error.description == "could not read vCPU state: vCPU 1: \(KVMError.ioctl(name: "KVM_GET_REGS", errno: EINTR))")
        guard case .vcpuStateUnreadable(let kept) = error, case .ioctl(_, let errno) = kept[0].error else {
            Issue.record("the KVM error was not kept")
            return
        }
        #expect(errno == EINTR)
    }
}
