import X86
/// A guest process (thread group) as its kernel records it, for `inspect ps` and the ledger.
public struct GuestProcess: Codable, Sendable, Equatable {
    public var pid: Int32
    public var parentPID: Int32
    /// The kernel's 16-byte task name (`comm`), as `ps -o comm` shows it.
    public var name: String
    /// `ps`-style state letter of the group leader: R S D T t X Z P I.
    public var state: String
    public var isKernelThread: Bool
    public var threadIDs: [Int32]
    /// argv from the process's own memory; empty for kernel threads or when unreadable.
    public var arguments: [String]
    /// Guest-physical address of the process's top-level page table (its CR3), if it has memory.
    public var pageTableRoot: PageTableRoot?
}

/// One mapping of a guest process, with the fields of a `/proc/PID/maps` line.
public struct GuestMapping: Codable, Sendable, Equatable {
    public var start: UInt64
    public var end: UInt64
    /// "r-xp" style: read, write, execute, shared/private.
    public var permissions: String
    public var fileOffset: UInt64
    public var deviceMajor: UInt32
    public var deviceMinor: UInt32
    public var inode: UInt64
    /// File path, or [heap], [stack], [vdso], [vvar]; empty for anonymous memory.
    public var path: String
    /// The mapped open file (`vm_file`, a `struct file *` in the guest kernel); 0 for anonymous memory.
    public var fileObject: UInt64

    /// The line `/proc/PID/maps` would print for this mapping.
    public var procMapsLine: String {
        func hex(_ v: UInt64, _ width: Int) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let head = "\(hex(start, 8))-\(hex(end, 8)) \(permissions) \(hex(fileOffset, 8)) "
            + "\(hex(UInt64(deviceMajor), 2)):\(hex(UInt64(deviceMinor), 2)) \(inode)"
        // The kernel pads the fixed fields to 72 columns, then a space, then the name.
        return path.isEmpty ? head + " " : head + " " + String(repeating: " ", count: max(0, 72 - head.count - 1)) + " " + path
    }
}

/// A symbolized stack frame of a guest thread.
public struct GuestStackFrame: Codable, Sendable, Equatable {
    public var pc: UInt64
    public var function: String?
    public var offset: UInt64?
    public var module: String?
    public var file: String?
    public var line: Int?
    /// How the frame was found: "registers", "cfi", "frame pointer", "kernel symbol".
    public var method: String

    public init(pc: UInt64, function: String? = nil, offset: UInt64? = nil, module: String? = nil,
                file: String? = nil, line: Int? = nil, method: String) {
        self.pc = pc; self.function = function; self.offset = offset; self.module = module
        self.file = file; self.line = line; self.method = method
    }
}

/// The stacks of one guest thread: its user stack (unwound) and, when it is in the kernel, the
/// kernel return addresses found on its kernel stack.
public struct GuestThreadStack: Codable, Sendable, Equatable {
    public var tid: Int32
    public var name: String
    /// Where its user registers came from: a vCPU (running in user mode) or the kernel's saved `pt_regs`.
    public var context: String
    public var userFrames: [GuestStackFrame]
    public var kernelFrames: [GuestStackFrame]
}
