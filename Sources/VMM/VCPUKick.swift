import Foundation

/// Interrupts a vCPU thread's KVM_RUN with a signal whose handler does nothing (no SA_RESTART).
enum VCPUKick {
    static let signalNumber = SIGUSR2

    static func installHandler() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(signalNumber, &action, nil)
    }

    /// Unblocks the kick signal for the calling (vCPU) thread: a monitor started by a process that
    /// blocks signals (test harnesses, some supervisors) inherits that mask, and a blocked kick
    /// would never interrupt KVM_RUN.
    static func acceptKicksOnThisThread() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signalNumber)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    static func kick(_ thread: pthread_t) {
        pthread_kill(thread, signalNumber)
    }
}
