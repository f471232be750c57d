import Foundation
import LeakJournal

/// Where `leakvisor run --track` writes its journal when --journal does not say, and what the
/// journal names as its producer.
enum JournalLocation {
    /// This build's version, as journals record it.
    static let leakvisorVersion = "0.15-dev"

    /// $XDG_STATE_HOME/leakvisor/journals (else ~/.local/state/leakvisor/journals)/PREFIX-DATE-TIME-PID.sqlite
    /// (PREFIX: `run`, or `attach` for a libvirt attach), in UTC so that names sort by start time.
    static func defaultPath(prefix: String = "run", now: Date = Date(),
                            environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let base: String
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
            base = state
        } else {
            base = (environment["HOME"] ?? NSHomeDirectory()) + "/.local/state"
        }
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone(identifier: "UTC")
        format.dateFormat = "yyyyMMdd-HHmmss"
        return "\(base)/leakvisor/journals/\(prefix)-\(format.string(from: now))-\(getpid()).sqlite"
    }

    /// The run's identity: this program, its command line, the guest's kernel and image.
    static func identity(options: RunOptions) -> RunIdentity {
        let image = GuestImageLocator.defaultDirectory()
        return RunIdentity(leakvisorVersion: leakvisorVersion, commandLine: CommandLine.arguments,
                           kernel: options.kernel.map(HostPathArgument.absolute) ?? image?.appendingPathComponent("vmlinux").path,
                           image: options.root?.path ?? options.initrd.map(HostPathArgument.absolute)
                               ?? image?.appendingPathComponent("initramfs.cpio").path)
    }
}
