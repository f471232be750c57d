import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import X86

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
        trapping.store(true, ordering: .relaxed)
        return summary
    }

    /// Puts back every byte the monitor changed: kernel hooks, allocator breakpoints, and the
    /// return addresses of calls in flight. Call with the guest paused.
    public func disarm(_ guest: PausedGuest) -> ArmingSummary {
        armed.withLock { $0 = .failure(TrackerError.disarmed) }
        trapping.store(false, ordering: .relaxed)
        var summary = ArmingSummary()
        let (sites, hooks, pagesBefore) = armingLock.withLock { _ in
            table.withLock { t in
                defer { t.sites = [:]; t.hooks = [:]; t.files = [:]; t.pagesBefore = [:] }
                return (Array(t.sites.values), Array(t.hooks.values), t.pagesBefore)
            }
        }
        // A breakpoint's byte is put back only where the breakpoint still is: in the frame the
        // file's page cache still holds at that index, still our `int3`. Anything else may be
        // another page by now and is left alone.
        let locator = (try? KernelView(kernel: kernel, memory: guest.memory, vcpus: guest.vcpus))
            .flatMap { try? PageCacheLocator(view: $0) }
        for site in sites {
            let at = GuestPhysicalAddress(site.physical)
            let byte = (try? guest.memory.read(at: at, count: 1))?.first
            var state: BreakpointState?
            if let locator, case .success(let cached) = Self.cachedFrame(locator, site) {
                state = site.state(cachedFrame: cached, byte: byte)
            }
            if state == .inPlace, (try? guest.memory.write([site.original], at: at)) != nil {
                summary.bytesRestored += 1
            } else {
                summary.bytesChangedByGuest += 1
                let why = state.map { "\($0)" } ?? "its page cache could not be read"
                summary.notes.append("\(site.guestPath): \(site.site.symbol) at frame \(hex(site.frame)) not restored: \(why)")
            }
        }
        table.withLock { t in for note in summary.notes { t.note("detach: " + note) } }
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
        let efer = guest.vcpus.first?.efer ?? 0
        for (slot, call) in pending {
            let user = UserMemory(memory: guest.memory, cr3: slot.root.rawValue, cr4: cr4, efer: efer)
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
        if let exitObserver { exitObserver(exitingSpace(mm: mm, root: root, view: view, vcpu: trap.state.index)) }
        ledger.retire(root, as: .exited, time: clock.now)
        calls.withLock { $0.forget(root: root) }
        preexisting.withLock { _ = $0.remove(root) }
        abandoned.withLock { _ = $0.remove(root) }
        trampolineNoted.withLock { _ = $0.remove(root) }
        spaces.withLock { _ = $0.removeValue(forKey: root) }
    }

    /// An address space as it is torn down: its memory is intact and nothing else uses it. On
    /// exit the exiting thread (the last one) gives registers and stack; on exec the old image has
    /// no thread left.
    func exitingSpace(mm: UInt64, root: PageTableRoot, view: KernelView, vcpu: Int) -> AddressSpaceExit {
        var threads: [GuestTask] = []
        let current = (try? view.currentTasks()) ?? [:]
        if let address = current[vcpu], let task = try? view.task(at: address), task.flags & Self.taskExiting != 0 {
            threads = [task]
        }
        return AddressSpaceExit(root: root, mm: mm, threads: threads, view: view, current: current)
    }

    /// PF_EXITING in `task_struct.flags`.
    static let taskExiting: UInt32 = 0x4

    /// Arms the allocator functions of an open file (`struct file *`), once per inode. One file
    /// at a time, whichever vCPU asks.
    func considerFile(_ file: UInt64, view: KernelView, memory: GuestMemory) {
        armingLock.withLock { _ in armFile(file, view: view, memory: memory) }
    }

    private func armFile(_ file: UInt64, view: KernelView, memory: GuestMemory) {
        guard let locator = try? PageCacheLocator(view: view), let inode = try? locator.inode(ofFile: file),
              let mapping = try? locator.mapping(ofFile: file) else { return }
        let state = table.withLock { $0.files[inode] }
        let path: String
        var wanted: [AllocatorSite]
        switch state {
        case .nothingToArm?: return
        case .armed?:
            let lost = revalidate(inode: inode, locator: locator, memory: memory)
            guard !lost.isEmpty, let somePath = table.withLock({ $0.sites.values.first { $0.inode == inode }?.guestPath })
                ?? (try? view.path(ofFile: file)) else { return }
            (path, wanted) = (somePath, lost)
        case .partial(let p, let missing)?:
            (path, wanted) = (p, missing + revalidate(inode: inode, locator: locator, memory: memory))
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
        var armedCount = 0
        for site in wanted {
            guard let page = try? locator.cachedPage(inMapping: mapping, pageIndex: site.fileOffset >> 12) else {
                missing.append(site)
                continue
            }
            switch armSite(site, physical: GuestPhysicalAddress(page.rawValue | (site.fileOffset & 0xFFF)), path: path,
                           inode: inode, mapping: mapping, memory: memory) {
            case .armed: armedCount += 1
            case .unreadable: missing.append(site)
            case .alreadyArmed, .differs: break
            }
        }
        table.withLock { t in
            let total = t.sites.values.filter { $0.inode == inode }.count
            t.files[inode] = missing.isEmpty ? .armed(sites: total) : .partial(path: path, missing: missing)
        }
        counters.withLock { $0.sitesArmed += armedCount }
    }

    enum SiteArming { case armed, alreadyArmed, differs, unreadable }

    /// Writes the `int3` of `site` at `physical` (in the file's page `site.fileOffset >> 12`) if
    /// the guest's bytes there are the host copy's first instruction.
    private func armSite(_ site: AllocatorSite, physical: GuestPhysicalAddress, path: String, inode: UInt64,
                         mapping: UInt64, memory: GuestMemory) -> SiteArming {
        guard let bytes = try? memory.read(at: physical, count: site.instruction.length) else { return .unreadable }
        if bytes.first == 0xCC, table.withLock({ $0.sites[physical.rawValue] != nil }) { return .alreadyArmed }
        guard bytes == site.instruction.bytes else {
            table.withLock { $0.note("\(path): \(site.symbol) in the guest differs from the host copy; not armed") }
            return .differs
        }
        rememberPage(physical, memory: memory)
        guard (try? memory.write([0xCC], at: physical)) != nil else { return .unreadable }
        let armed = ArmedSite(site: site, physical: physical.rawValue, original: bytes[0], guestPath: path,
                              inode: inode, mapping: mapping)
        table.withLock { $0.sites[physical.rawValue] = armed }
        return .armed
    }

    /// Checks every breakpoint of the file `inode` against its page cache now (the file is being
    /// mapped): a page replaced by another frame (the file was rewritten, or evicted and read
    /// again) is re-armed in the new frame and the old frame forgotten, never written again; a
    /// byte the guest wrote over our `int3` is armed again if it is the original instruction.
    /// Returns the sites whose page is not cached now (armed when the file is mapped again).
    func revalidate(inode: UInt64, locator: PageCacheLocator, memory: GuestMemory) -> [AllocatorSite] {
        let sites = table.withLock { $0.sites.values.filter { $0.inode == inode } }
        var cachedFrames: [UInt64: UInt64?] = [:]     // page index → frame cached there now
        var lost: [AllocatorSite] = []
        for armed in sites {
            let cached: UInt64?
            if let known = cachedFrames[armed.pageIndex] {
                cached = known
            } else {
                // An unreadable page cache says nothing about the breakpoint: leave it as it is.
                guard case .success(let lookup) = Self.cachedFrame(locator, armed) else { continue }
                cached = lookup
                cachedFrames[armed.pageIndex] = cached
            }
            let byte = (try? memory.read(at: GuestPhysicalAddress(armed.physical), count: 1))?.first
            let state = armed.state(cachedFrame: cached, byte: byte)
            guard state != .inPlace else { continue }
            forget(armed)
            table.withLock { $0.note("\(armed.guestPath): \(armed.site.symbol) at frame \(hex(armed.frame)): \(state); re-arming") }
            switch state {
            case .inPlace: break
            case .evicted: lost.append(armed.site)
            case .moved(let frame):
                let physical = GuestPhysicalAddress(frame | (armed.site.fileOffset & 0xFFF))
                if armSite(armed.site, physical: physical, path: armed.guestPath, inode: inode, mapping: armed.mapping,
                           memory: memory) == .unreadable { lost.append(armed.site) }
            case .overwritten:
                if armSite(armed.site, physical: GuestPhysicalAddress(armed.physical), path: armed.guestPath, inode: inode,
                           mapping: armed.mapping, memory: memory) == .unreadable { lost.append(armed.site) }
            }
        }
        return lost
    }

    /// The frame the page cache of `armed`'s file holds at its page index now (nil: not cached),
    /// or the failure to read the page cache.
    static func cachedFrame(_ locator: PageCacheLocator, _ armed: ArmedSite) -> Result<UInt64?, IntrospectionError> {
        do {
            return .success(try locator.cachedPage(inMapping: armed.mapping, pageIndex: armed.pageIndex)?.rawValue)
        } catch {
            return .failure(error)
        }
    }

    /// Drops a breakpoint the guest's page cache no longer holds, and the page copy kept for it
    /// when no other breakpoint is in that frame.
    private func forget(_ armed: ArmedSite) {
        table.withLock { t in
            t.sites[armed.physical] = nil
            if !t.sites.values.contains(where: { $0.frame == armed.frame }), !t.hooks.values.contains(where: { $0.physical & ~0xFFF == armed.frame }) {
                t.pagesBefore[armed.frame] = nil
            }
        }
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
