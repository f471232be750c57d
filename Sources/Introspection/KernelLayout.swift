import BTF
/// Offsets and sizes of the kernel structures introspection reads, all taken from the guest
/// kernel's BTF (none hard-coded), resolved once. A kernel whose BTF lacks one fails with a
/// typed error that names the member.
public struct KernelLayout: Sendable {
    public struct TaskStruct: Sendable {
        public var tasks = 0, pid = 0, tgid = 0, comm = 0, commLength = 0, state = 0, exitState = 0
        public var flags = 0, mm = 0, realParent = 0, stack = 0, threadGroup = 0, threadSP = 0, threadFSBase = 0
        /// `task_struct.signal` and `signal_struct.flags` (nil when the BTF lacks them: group exits
        /// are then not told apart).
        public var signal: Int?, signalFlags: Int?
    }
    public struct MMStruct: Sendable {
        public var mapleRoot = 0, pgd = 0, argStart = 0, argEnd = 0, startStack = 0, startBrk = 0, brk = 0
    }
    public struct VMArea: Sendable {
        public var start = 0, end = 0, flags = 0, pageOffset = 0, file = 0, operations = 0, privateData = 0
    }
    /// One maple node kind: where its pivots, slots and metadata `end` byte are.
    public struct MapleNodeLayout: Sendable {
        public var pivots = 0, pivotCount = 0, slots = 0, slotCount = 0, metaEnd = 0

        init(btf: BTF, node: String, metaEnd: Int) throws(BTFError) {
            let pivot = try btf.member(node, path: "pivot")
            let slot = try btf.member(node, path: "slot")
            (pivots, pivotCount) = (pivot.offset, pivot.arrayCount ?? 0)
            (slots, slotCount) = (slot.offset, slot.arrayCount ?? 0)
            self.metaEnd = try btf.member(node, path: "meta").offset + metaEnd
        }
        init() {}
    }
    /// `maple_range_64` (also the leaf layout) and `maple_arange_64` nodes, and the type tags.
    public struct MapleNode: Sendable {
        public var range = MapleNodeLayout(), arange = MapleNodeLayout()
        public var typeLeaf64: UInt64 = 0, typeRange64: UInt64 = 0, typeArange64: UInt64 = 0
    }
    public struct Files: Sendable {
        public var filePath = 0, fileInode = 0, pathMount = 0, pathDentry = 0
        public var dentryName = 0, dentryParent = 0, qstrName = 0, qstrLength = 0
        public var inodeNumber = 0, inodeSuperBlock = 0, superBlockDevice = 0
        public var mountVFSMount = 0, mountParent = 0, mountMountpoint = 0, vfsmountRoot = 0
        public var specialMappingName = 0
    }
    /// `struct pt_regs`: user registers saved at the top of a task's kernel stack.
    public struct PTRegs: Sendable {
        public var size = 0
        public var offsets: [String: Int] = [:]
    }

    /// `struct orc_entry` (packed; bitfields in the 32-bit word at `flagsByte`), if the kernel has ORC.
    public struct ORCEntry: Sendable {
        public var size = 0, spOffset = 0, bpOffset = 0, flagsByte = 0
        public var spRegisterBit = 0, bpRegisterBit = 0, typeBit = 0, typeWidth = 0
        public var endBit: Int?
    }
    /// `struct inactive_task_frame`: what `__switch_to_asm` leaves at a sleeping task's `thread.sp`.
    public struct SwitchFrame: Sendable {
        public var size = 0, bp = 0, returnAddress = 0
    }

    /// x86 `struct fpstate` (5.16 and later): a task's saved FPU and vector state.
    public struct FPUState: Sendable {
        /// `task_struct.thread.fpu.fpstate` (a pointer), `task_struct.thread_info.flags`,
        /// `fpstate.regs` (the XSAVE area) and `fpstate.size` (its bytes).
        public var taskPointer = 0, threadInfoFlags = 0, regs = 0, size = 0

        init(btf: BTF) throws(BTFError) {
            taskPointer = try btf.member("task_struct", path: "thread.fpu.fpstate").offset
            threadInfoFlags = try btf.member("task_struct", path: "thread_info.flags").offset
            regs = try btf.member("fpstate", path: "regs").offset
            size = try btf.member("fpstate", path: "size").offset
        }
    }

    public var task = TaskStruct()
    public var orc: ORCEntry?
    public var switchFrame = SwitchFrame()
    public var mm = MMStruct()
    public var vma = VMArea()
    public var maple = MapleNode()
    public var files = Files()
    public var ptRegs = PTRegs()
    /// `struct module` and friends; a kernel without them fails only in `loadedModules()`.
    public var module: Result<Module, BTFError> = .failure(.noSuchType("module"))
    /// nil: the kernel's BTF has no `struct fpstate` (vector registers of threads off a vCPU are not read).
    public var fpuState: FPUState?
    /// Page-cache structures; a kernel without them fails only when a `PageCacheLocator` is made.
    public var pageCache: Result<PageCache, BTFError> = .failure(.noSuchType("xa_node"))
    /// Allocator structures for kernel tracking; a kernel without them fails only when tracked.
    public var kmem: Result<Kmem, BTFError> = .failure(.noSuchType("kmem_cache"))
    /// Page and vmalloc structures for kernel roots; a kernel without them fails only when its roots are asked for.
    public var roots: Result<Roots, BTFError> = .failure(.noSuchType("vmap_area"))
    /// SLUB's free lists; without them every slab slot not tracked is a root (free ones included).
    public var slub: Result<Slub, BTFError> = .failure(.noSuchType("slab"))

    public init(btf: BTF) throws(BTFError) {
        func at(_ type: String, _ path: String) throws(BTFError) -> Int { try btf.member(type, path: path).offset }
        task.tasks = try at("task_struct", "tasks")
        task.pid = try at("task_struct", "pid")
        task.tgid = try at("task_struct", "tgid")
        let comm = try btf.member("task_struct", path: "comm")
        task.comm = comm.offset
        task.commLength = comm.size
        task.state = try at("task_struct", "__state")
        task.exitState = try at("task_struct", "exit_state")
        task.flags = try at("task_struct", "flags")
        task.mm = try at("task_struct", "mm")
        task.realParent = try at("task_struct", "real_parent")
        task.stack = try at("task_struct", "stack")
        task.threadGroup = try at("task_struct", "thread_group")
        task.threadSP = try at("task_struct", "thread.sp")
        task.threadFSBase = try at("task_struct", "thread.fsbase")
        task.signal = try? at("task_struct", "signal")
        task.signalFlags = try? at("signal_struct", "flags")

        mm.mapleRoot = try at("mm_struct", "mm_mt") + (try at("maple_tree", "ma_root"))
        mm.pgd = try at("mm_struct", "pgd")
        mm.argStart = try at("mm_struct", "arg_start")
        mm.argEnd = try at("mm_struct", "arg_end")
        mm.startStack = try at("mm_struct", "start_stack")
        mm.startBrk = try at("mm_struct", "start_brk")
        mm.brk = try at("mm_struct", "brk")

        vma.start = try at("vm_area_struct", "vm_start")
        vma.end = try at("vm_area_struct", "vm_end")
        vma.flags = try at("vm_area_struct", "vm_flags")
        vma.pageOffset = try at("vm_area_struct", "vm_pgoff")
        vma.file = try at("vm_area_struct", "vm_file")
        vma.operations = try at("vm_area_struct", "vm_ops")
        vma.privateData = try at("vm_area_struct", "vm_private_data")

        let metaEnd = try at("maple_metadata", "end")
        maple.range = try MapleNodeLayout(btf: btf, node: "maple_range_64", metaEnd: metaEnd)
        maple.arange = try MapleNodeLayout(btf: btf, node: "maple_arange_64", metaEnd: metaEnd)
        maple.typeLeaf64 = UInt64(try btf.enumValue("maple_type", "maple_leaf_64"))
        maple.typeRange64 = UInt64(try btf.enumValue("maple_type", "maple_range_64"))
        maple.typeArange64 = UInt64(try btf.enumValue("maple_type", "maple_arange_64"))

        files.filePath = try at("file", "f_path")
        files.fileInode = try at("file", "f_inode")
        files.pathMount = try at("path", "mnt")
        files.pathDentry = try at("path", "dentry")
        files.dentryName = try at("dentry", "d_name")
        files.dentryParent = try at("dentry", "d_parent")
        files.qstrName = try at("qstr", "name")
        files.qstrLength = try at("qstr", "len")
        files.inodeNumber = try at("inode", "i_ino")
        files.inodeSuperBlock = try at("inode", "i_sb")
        files.superBlockDevice = try at("super_block", "s_dev")
        files.mountVFSMount = try at("mount", "mnt")
        files.mountParent = try at("mount", "mnt_parent")
        files.mountMountpoint = try at("mount", "mnt_mountpoint")
        files.vfsmountRoot = try at("vfsmount", "mnt_root")
        files.specialMappingName = try at("vm_special_mapping", "name")

        switchFrame.size = try btf.size(ofStructure: "inactive_task_frame")
        switchFrame.bp = try at("inactive_task_frame", "bp")
        switchFrame.returnAddress = try at("inactive_task_frame", "ret_addr")
        if let size = try? btf.size(ofStructure: "orc_entry") {
            var o = ORCEntry()
            o.size = size
            o.spOffset = try at("orc_entry", "sp_offset")
            o.bpOffset = try at("orc_entry", "bp_offset")
            let spReg = try btf.member("orc_entry", path: "sp_reg")
            let bpReg = try btf.member("orc_entry", path: "bp_reg")
            let type = try btf.member("orc_entry", path: "type")
            o.flagsByte = spReg.offset
            o.spRegisterBit = spReg.bitOffset - 8 * spReg.offset
            o.bpRegisterBit = bpReg.bitOffset - 8 * spReg.offset
            o.typeBit = type.bitOffset - 8 * spReg.offset
            o.typeWidth = type.bitfieldSize ?? 0
            if let end = try? btf.member("orc_entry", path: "end") { o.endBit = end.bitOffset - 8 * spReg.offset }
            orc = o
        }
        ptRegs.size = try btf.size(ofStructure: "pt_regs")
        for name in ["r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di",
                     "orig_ax", "ip", "cs", "flags", "sp", "ss"] {
            ptRegs.offsets[name] = try at("pt_regs", name)
        }
        pageCache = Result { () throws(BTFError) in try PageCache(btf: btf) }
        module = Result { () throws(BTFError) in try Module(btf: btf) }
        kmem = Result { () throws(BTFError) in try Kmem(btf: btf) }
        roots = Result { () throws(BTFError) in try Roots(btf: btf) }
        slub = Result { () throws(BTFError) in try Slub(btf: btf) }
        fpuState = try? FPUState(btf: btf)
    }
}
