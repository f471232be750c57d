import X86
import DebugInfo

/// Stacks and symbols of guest processes: user registers from the vCPU or the kernel's saved
/// context, unwinding (DWARF CFI, else frame pointers) and symbolization (function, file:line)
/// through libdw over the guest's own memory, with the host's copies of the mapped ELF files.
public struct GuestStackReader {
    public let view: KernelView
    public let files: GuestSymbolFiles

    public init(view: KernelView, files: GuestSymbolFiles) {
        self.view = view
        self.files = files
    }

    /// Every thread of process `pid`: user frames, and kernel frames when it is in the kernel.
    public func stacks(of pid: Int32) throws(IntrospectionError) -> [GuestThreadStack] {
        let all = try view.tasks()
        let leader = try view.process(pid, among: all)
        let space = try view.userSpace(of: leader)
        // Read once for all threads: which task each vCPU runs, and the debug vmlinux's lines.
        let current = try view.currentTasks()
        let lines = view.kernelLineTable()
        let symbolizer = try self.symbolizer(for: leader)
        let unwinder: StackUnwinder
        do { unwinder = try StackUnwinder(symbolizer: symbolizer) } catch { throw .libdwfl(error) }
        var result: [GuestThreadStack] = []
        for thread in all where thread.tgid == leader.tgid {
            let (registers, source) = try view.userRegisters(of: thread, current: current)
            let trace = unwinder.unwind(registers: RegisterSet(registers)) { address in
                try? space.load(UInt64.self, at: GuestVirtualAddress(address))
            }
            let frames = trace.frames.map { frame in
                Self.frame(frame.pc, symbolizer.symbolize(frame: frame), method: Self.describe(frame.method))
            }
            let kernelFrames = source == .savedAtKernelEntry
                ? try view.kernelStack(of: thread, current: current, lines: lines) : []
            result.append(GuestThreadStack(tid: thread.pid, name: thread.name, context: source.description,
                                           userFrames: frames, kernelFrames: kernelFrames))
        }
        return result
    }

    /// Function and source line of a user address in process `pid`.
    public func symbolize(_ address: UInt64, in pid: Int32) throws(IntrospectionError) -> GuestStackFrame {
        let symbolizer = try self.symbolizer(for: try view.process(pid))
        return Self.frame(address, symbolizer.symbolize(pc: address), method: "address")
    }

    /// A libdwfl session with every ELF file the process maps (from its VMAs) at its load bias.
    func symbolizer(for task: GuestTask) throws(IntrospectionError) -> Symbolizer {
        let symbolizer: Symbolizer
        do { symbolizer = try files.makeSymbolizer() } catch { throw .libdwfl(error) }
        files.addModules(of: try view.mappings(of: task), to: symbolizer)
        return symbolizer
    }

    static func frame(_ pc: UInt64, _ location: SymbolizedLocation?, method: String) -> GuestStackFrame {
        GuestStackFrame(pc: pc, function: location?.function, offset: location?.functionOffset,
                        module: location?.module, file: location?.file, line: location?.line, method: method)
    }

    static func describe(_ method: FrameMethod) -> String {
        switch method {
        case .initial: return "registers"
        case .cfi: return "cfi"
        case .framePointer: return "frame pointer"
        }
    }
}

extension RegisterSet {
    init(_ r: GeneralRegisters) {
        self.init()
        rax = r.rax; rdx = r.rdx; rcx = r.rcx; rbx = r.rbx; rsi = r.rsi; rdi = r.rdi; rbp = r.rbp; rsp = r.rsp
        r8 = r.r8; r9 = r.r9; r10 = r.r10; r11 = r.r11; r12 = r.r12; r13 = r.r13; r14 = r.r14; r15 = r.r15
        rip = r.rip
    }
}
