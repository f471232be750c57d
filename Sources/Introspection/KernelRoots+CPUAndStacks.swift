import X86

/// One task's kernel stack and the part of it a scan treats as live.
public struct KernelStackRoot: Sendable, Equatable {
    public var task: UInt64
    public var base: UInt64
    public var live: Range<UInt64>
}

extension KernelView {
    /// Each possible CPU's unit of the first per-CPU chunk: `__per_cpu_offset[cpu]` (+
    /// `__per_cpu_start`, 0 on x86-64) for `pcpu_unit_size` bytes (static variables, the reserved
    /// and the dynamic part of the first chunk, where alloc_percpu memory starts out). Without
    /// `pcpu_unit_size` the static part (`__per_cpu_start`..`__per_cpu_end`) alone.
    func perCPURoots(limits: KernelRootLimits) throws(IntrospectionError) -> [Range<UInt64>] {
        let staticStart = kernel.symbols.perCPUOffset(of: "__per_cpu_start") ?? 0
        let staticEnd = kernel.symbols.perCPUOffset(of: "__per_cpu_end")
        var unitSize: UInt64
        if let variable = try? symbol("pcpu_unit_size").rawValue {
            unitSize = UInt64(try u32(variable, "pcpu_unit_size"))
        } else if let staticEnd, staticEnd > staticStart {
            unitSize = staticEnd - staticStart
        } else {
            throw .missingSymbol("pcpu_unit_size")
        }
        if let staticEnd, staticEnd > staticStart { unitSize = max(unitSize, staticEnd - staticStart) }
        guard unitSize > 0, unitSize <= limits.maximumUnitBytes else {
            throw .inconsistent("per-CPU unit of \(unitSize) bytes (at most \(limits.maximumUnitBytes) accepted)")
        }
        var units: [Range<UInt64>] = []
        for (cpu, offset) in try possibleCPUOffsets(limits: limits) {
            let base = offset &+ staticStart
            let (end, overflow) = base.addingReportingOverflow(unitSize)
            guard base >= 0xFFFF_8000_0000_0000, !overflow else {
                throw .inconsistent("per-CPU unit of CPU \(cpu) at 0x\(String(base, radix: 16)) is not in the kernel half")
            }
            units.append(base..<end)
        }
        guard !units.isEmpty else { throw .inconsistent("no possible CPU") }
        return units
    }

    /// `__per_cpu_offset[cpu]` of every possible CPU (bounded by `limits.maximumCPUs`).
    func possibleCPUOffsets(limits: KernelRootLimits) throws(IntrospectionError) -> [(cpu: Int, offset: UInt64)] {
        let offsets = try symbol("__per_cpu_offset").rawValue
        let cpuCount = Int(try u32(try symbol("nr_cpu_ids").rawValue, "nr_cpu_ids"))
        guard cpuCount >= 1, cpuCount <= limits.maximumCPUs else {
            throw .inconsistent("nr_cpu_ids is \(cpuCount) (at most \(limits.maximumCPUs) accepted)")
        }
        let possible = try cpuMask("__cpu_possible_mask", bits: cpuCount)
        var result: [(cpu: Int, offset: UInt64)] = []
        for cpu in 0..<cpuCount where possible[cpu] {
            result.append((cpu, try u64(try member(offsets, cpu * 8, "__per_cpu_offset[\(cpu)]"), "__per_cpu_offset[\(cpu)]")))
        }
        return result
    }

    /// The first `bits` bits of a `struct cpumask` kernel variable.
    func cpuMask(_ name: String, bits: Int) throws(IntrospectionError) -> [Bool] {
        let words = try self.words(try symbol(name).rawValue, (bits + 63) / 64, name)
        return (0..<bits).map { words[$0 / 64] >> UInt64($0 % 64) & 1 == 1 }
    }

    /// Every task's kernel stack (`task->stack`, THREAD_SIZE bytes) and its live part: from the
    /// saved stack pointer (`thread.sp`) to the top; for a task running in kernel mode on a vCPU,
    /// from that vCPU's RSP when it lies in the stack. The whole stack when the stack pointer is
    /// elsewhere (an IRQ or exception stack, or a value that does not fit); only the user
    /// registers' frame at the top for a task running in user mode. Tasks without a stack (dead) are left out.
    func stackRoots() throws(IntrospectionError) -> [KernelStackRoot] {
        let size = threadSize()
        let current = (try? currentTasks()) ?? [:]
        var all = try tasks().map(\.address)
        var listed = Set(all)
        // Idle tasks of CPUs other than 0 are not on the task list: those running now are found here.
        for (_, task) in current.sorted(by: { $0.key < $1.key }) where listed.insert(task).inserted { all.append(task) }
        var result: [KernelStackRoot] = []
        let layout = kernel.layout
        for task in all {
            let base = try u64(try member(task, layout.task.stack, "task_struct.stack"), "task_struct.stack")
            guard base != 0 else { continue }
            let (top, overflow) = base.addingReportingOverflow(size)
            guard base >= 0xFFFF_8000_0000_0000, !overflow else {
                throw .inconsistent("task 0x\(String(task, radix: 16)) has its stack at 0x\(String(base, radix: 16))")
            }
            var low: UInt64
            if let cpu = vcpus.first(where: { current[$0.index] == task }) {
                if cpu.privilegeLevel == 3 {
                    low = top &- UInt64(max(0, min(Int(size), layout.ptRegs.size)))
                } else {
                    let sp = cpu.registers.rsp
                    low = sp >= base && sp < top ? sp : base
                }
            } else {
                let sp = try u64(try member(task, layout.task.threadSP, "task_struct.thread.sp"), "task_struct.thread.sp")
                low = sp >= base && sp < top ? sp : base
            }
            low &= ~7
            result.append(KernelStackRoot(task: task, base: base, live: low..<top))
        }
        return result
    }
}
