import GuestImage
import MetricsExport
import Monitor
import VMM

/// What `leakvisor run` was asked to do, as plain values (the `run` command's flags, parsed).
struct RunOptions {
    var kernel: String?
    var initrd: String?
    var disks: [DiskConfiguration] = []
    /// `--root`: the disk the command runs on (attached before `disks`, as /dev/vda).
    var root: DiskConfiguration?
    var memoryBytes: UInt64 = 512 << 20
    var cpus = 2
    var append = ""
    var additions: [String] = []
    var symbolDirectories: [String] = []
    var vmlinux: String?
    var kernelSymbols: String?
    /// What to trap (nil: no tracking), and how tracking scans and reports.
    var track: TrackTarget?
    var tracking = TrackingOptions()
    /// --journal (absolute), and whether to write a journal at all (--no-journal: false).
    var journalPath: String?
    var writesJournal = true
    /// --metrics-listen: where to serve live metrics (nil: nowhere).
    var metricsAddress: ListenAddress?
    /// Whether any option that only tracking uses was given (--report, --scan-every, ...:
    /// `RunCommand.trackingOnlyOptionsGiven`).
    var trackingOptionsGiven = false
    var errorExitcode: Int32?
    var timeout: Double?
    var verboseKernel = false
    var interactive = false
    var rawConsole = false
    var kvmDevice = "/dev/kvm"
    /// Use the snapshot cache: restore a fitting snapshot, or save one after a cold boot.
    var snapshots = true
    /// Continue this snapshot file instead of booting.
    var restore: String?
    var command: [String] = []

    /// The guest device the payload names for init when the command runs on a root disk.
    var rootDevice: String? { root == nil ? nil : RootDisk.guestDevice }

    /// The tracking options for `track` (--track's, or a restored snapshot's): C++ operators armed
    /// unless only the C allocator is asked for; the journal (--journal, else the default path)
    /// unless --no-journal.
    func trackingOptions(for track: TrackTarget) -> TrackingOptions {
        var options = tracking
        options.includeOperators = track.includesOperators
        if writesJournal {
            options.journalPath = journalPath ?? JournalLocation.defaultPath()
            options.runIdentity = JournalLocation.identity(options: self)
        }
        return options
    }
}

/// What `--track` can trap.
enum TrackTarget: String, CaseIterable {
    case user
    case userMalloc = "user-malloc"
    /// The guest kernel's allocators (kmalloc, kmem_cache, vmalloc frees).
    case kernel
    /// `user` and `kernel`.
    case all

    var tracksUser: Bool { self != .kernel }
    var tracksKernel: Bool { self == .kernel || self == .all }
    /// Whether C++ `new`/`delete` are armed with the user allocators (all but `user-malloc`).
    var includesOperators: Bool { self != .userMalloc }
}
