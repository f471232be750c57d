import AllocationTracking
import GuestMemory
import Introspection
import VMM

extension UserAllocationTracker {
    static let ftraceNop: [UInt8] = [0x0F, 0x1F, 0x44, 0x00, 0x00]

    /// Arms the kernel hooks and every allocator in files the guest's processes map now. Call once
    /// the guest kernel has started user space, from a vCPU thread or with the guest paused.
    public func arm(memory: GuestMemory, vcpus: [VCPUSnapshot]) throws -> ArmingSummary {
        let view = try KernelView(kernel: kernel, memory: memory, vcpus: vcpus)
        var summary = ArmingSummary()
        for kind in [KernelHook.Kind.mmapRegion, .exitMmap] {
            let address = try view.symbol(kind.rawValue).rawValue
            let physical = try view.space.translate(GuestVirtualAddress(address)).physicalAddress
            let bytes = try memory.read(at: physical, count: 5)
            guard bytes == Self.ftraceNop else {
                throw TrackerError.kernelHook(kind.rawValue, "starts with \(bytes.map { String(format2: $0) }.joined(separator: " ")), not the 5-byte ftrace nop (is ftrace tracing it?)")
            }
            rememberPage(physical, memory: memory)
            try memory.write(KernelHookPort.instruction, at: physical)
            table.withLock { $0.hooks[address] = KernelHook(kind: kind, address: address, physical: physical.rawValue, original: Array(bytes.prefix(2))) }
            summary.kernelHooks += 1
        }
        // Each process once: its thread-group leader (the task list is read once).
        for task in try view.tasks() where task.pid == task.tgid && task.mm != 0 {
            guard let mappings = try? view.mappings(ofMM: task.mm) else { continue }
            if let root = try? view.pageTableRoot(ofMM: task.mm) {
                preexisting.withLock { _ = $0.insert(root) }
            }
            for mapping in mappings where mapping.fileObject != 0 && mapping.permissions.contains("x") {
                considerFile(mapping.fileObject, view: view, memory: memory)
            }
        }
        table.withLock { t in
            summary.sites = t.sites.count
            summary.files = Array(Set(t.sites.values.map(\.guestPath))).sorted()
        }
        return summary
    }

    /// Puts back every byte the monitor changed: kernel hooks, allocator breakpoints, and the
    /// return addresses of calls in flight. Call with the guest paused.
    public func disarm(_ guest: PausedGuest) -> ArmingSummary {
        armed.withLock { $0 = .failure(TrackerError.disarmed) }
        var summary = ArmingSummary()
        let (sites, hooks, pagesBefore) = table.withLock { t in
            defer { t.sites = [:]; t.hooks = [:]; t.files = [:]; t.pagesBefore = [:] }
            return (Array(t.sites.values), Array(t.hooks.values), t.pagesBefore)
        }
        for site in sites {
            let at = GuestPhysicalAddress(site.physical)
            if (try? guest.memory.read(at: at, count: 1)) == [0xCC], (try? guest.memory.write([site.original], at: at)) != nil {
                summary.bytesRestored += 1
            } else {
                summary.bytesChangedByGuest += 1
            }
        }
        for hook in hooks {
            let at = GuestPhysicalAddress(hook.physical)
            if (try? guest.memory.read(at: at, count: 2)) == KernelHookPort.instruction,
               (try? guest.memory.write(hook.original, at: at)) != nil {
                summary.bytesRestored += 2
            } else {
                summary.bytesChangedByGuest += 2
            }
        }
        let pending = calls.withLock { c in
            defer { c = PendingCalls() }
            return c.bySlot
        }
        let cr4 = guest.vcpus.first?.cr4 ?? 0
        for (slot, call) in pending {
            let user = UserMemory(memory: guest.memory, cr3: slot.root, cr4: cr4)
            if (try? user.word(slot.address)) == Self.trampoline, (try? user.writeWord(slot.address, call.returnAddress)) != nil {
                summary.returnAddressesRestored += 1
            }
        }
        for (page, before) in pagesBefore {
            summary.pagesCompared += 1
            if (try? guest.memory.read(at: GuestPhysicalAddress(page), count: before.count)) == before { summary.pagesIdentical += 1 }
        }
        return summary
    }

    /// Keeps a copy of the page holding `address` before the monitor first writes into it.
    func rememberPage(_ address: GuestPhysicalAddress, memory: GuestMemory) {
        let page = address.rawValue & ~0xFFF
        guard table.withLock({ $0.pagesBefore[page] == nil }),
              let bytes = try? memory.read(at: GuestPhysicalAddress(page), count: 4096) else { return }
        table.withLock { t in if t.pagesBefore[page] == nil { t.pagesBefore[page] = bytes } }
    }

    /// The `mmap_region` hook: arm the file being mapped if it has allocator functions.
    func mapped(file: UInt64, trap: GuestTrap, memory: GuestMemory) {
        counters.withLock { $0.mmapHooks += 1 }
        guard file != 0, let view = try? KernelView(kernel: kernel, memory: memory, vcpus: [trap.state]) else { return }
        considerFile(file, view: view, memory: memory)
    }

    /// The `exit_mmap` hook: the address space of `mm` is being torn down (exit or exec).
    func exiting(mm: UInt64, trap: GuestTrap, memory: GuestMemory) {
        counters.withLock { $0.exitHooks += 1 }
        guard let view = try? KernelView(kernel: kernel, memory: memory, vcpus: [trap.state]),
              let root = try? view.pageTableRoot(ofMM: mm) else { return }
        if scansAtExit { scanAtExit(mm: mm, root: root, view: view, vcpu: trap.state.index) }
        ledger.retire(root, as: .exited, time: clock.now)
        calls.withLock { $0.forget(root: root) }
        preexisting.withLock { _ = $0.remove(root) }
        spaces.withLock { _ = $0.removeValue(forKey: root) }
    }

    /// The final scan of an address space as it is torn down: its memory is intact and nothing
    /// else uses it. On exit the exiting thread (the last one) gives registers and stack; on exec
    /// the old image has no thread left, so its stack mapping is scanned whole.
    func scanAtExit(mm: UInt64, root: UInt64, view: KernelView, vcpu: Int) {
        var threads: [GuestTask] = []
        let current = (try? view.currentTasks()) ?? [:]
        if let address = current[vcpu], let task = try? view.task(at: address), task.flags & Self.taskExiting != 0 {
            threads = [task]
        }
        scanner.scan(space: root, mm: mm, threads: threads, view: view, current: current, kind: "at exit")
    }

    /// PF_EXITING in `task_struct.flags`.
    static let taskExiting: UInt32 = 0x4

    /// Arms the allocator functions of an open file (`struct file *`), once per inode. One file
    /// at a time, whichever vCPU asks.
    func considerFile(_ file: UInt64, view: KernelView, memory: GuestMemory) {
        armingLock.withLock { _ in armFile(file, view: view, memory: memory) }
    }

    private func armFile(_ file: UInt64, view: KernelView, memory: GuestMemory) {
        guard let locator = try? PageCacheLocator(view: view), let inode = try? locator.inode(ofFile: file) else { return }
        let state = table.withLock { $0.files[inode] }
        let path: String
        let wanted: [AllocatorSite]
        switch state {
        case .nothingToArm?, .armed?: return
        case .partial(let p, let missing)?:
            (path, wanted) = (p, missing)
        case nil:
            guard let guestPath = try? view.path(ofFile: file) else { return }
            path = guestPath
            guard let host = files.hostPath(forGuest: path) else {
                table.withLock { $0.files[inode] = .nothingToArm }
                return
            }
            wanted = sites(inHostFile: host, guestPath: path)
            if wanted.isEmpty {
                table.withLock { $0.files[inode] = .nothingToArm }
                return
            }
        }
        var missing: [AllocatorSite] = []
        var armed: [ArmedSite] = []
        for site in wanted {
            guard let page = try? locator.cachedPage(ofFile: file, pageIndex: site.fileOffset >> 12) else {
                missing.append(site)
                continue
            }
            let physical = GuestPhysicalAddress(page.rawValue + (site.fileOffset & 0xFFF))
            guard let bytes = try? memory.read(at: physical, count: site.instruction.length) else {
                missing.append(site)
                continue
            }
            if bytes.first == 0xCC, table.withLock({ $0.sites[physical.rawValue] != nil }) { continue }
            guard bytes == site.instruction.bytes else {
                table.withLock { $0.note("\(path): \(site.symbol) in the guest differs from the host copy; not armed") }
                continue
            }
            rememberPage(physical, memory: memory)
            guard (try? memory.write([0xCC], at: physical)) != nil else { continue }
            armed.append(ArmedSite(site: site, physical: physical.rawValue, original: bytes[0], guestPath: path))
        }
        table.withLock { t in
            for site in armed { t.sites[site.physical] = site }
            t.files[inode] = missing.isEmpty ? .armed(sites: armed.count) : .partial(path: path, missing: missing)
        }
        counters.withLock { $0.sitesArmed += armed.count }
    }

    /// The allocator sites of a host file (cached by path) that this tracker arms.
    func sites(inHostFile host: String, guestPath: String) -> [AllocatorSite] {
        let all = allSites(inHostFile: host, guestPath: guestPath)
        return includesOperators.withLock { $0 } ? all : all.filter { $0.entryPoint.function.family == .malloc }
    }

    private func allSites(inHostFile host: String, guestPath: String) -> [AllocatorSite] {
        if let cached = siteCache.withLock({ $0[host] }) { return cached }
        var found: [AllocatorSite] = []
        do {
            let result = try AllocatorSiteFinder.sites(inFile: host)
            found = result.armable
            for site in result.unarmable {
                table.withLock { $0.note("\(guestPath): \(site.symbol) not armed: \(site.reason)") }
            }
        } catch {
            table.withLock { $0.note("\(guestPath): cannot read its host copy \(host): \(error)") }
        }
        siteCache.withLock { $0[host] = found }
        return found
    }
}

/// Why tracking could not start.
public enum TrackerError: Error, CustomStringConvertible {
    case kernelHook(String, String)
    /// Arming is in progress on another vCPU.
    case arming
    /// Tracking was stopped and every breakpoint removed.
    case disarmed

    public var description: String {
        switch self {
        case .kernelHook(let function, let why): return "cannot hook the guest kernel's \(function): it \(why)"
        case .arming: return "arming is in progress"
        case .disarmed: return "tracking was stopped"
        }
    }
}

extension String {
    init(format2 byte: UInt8) {
        let digits = String(byte, radix: 16)
        self = byte < 16 ? "0" + digits : digits
    }
}
