import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import Synchronization
import X86

/// Writes the monitor's bytes into the guest and takes them back: the kernel hooks over the
/// ftrace `nopl` of `mmap_region` and `exit_mmap`, and the allocator `int3`s in the page cache
/// of the files processes map (checked against the page cache each time a file is mapped again).
/// Owns the `BreakpointTable`.
final class PageCachePatcher: Sendable {
    let kernel: GuestKernel
    let files: GuestSymbolFiles
    let notes: TrackerNotes
    /// Guards the bytes the monitor changed in the guest and their originals.
    let table = Mutex(BreakpointTable())
    /// Guards the host files' allocator sites; held for the whole of arming a file (so one file is
    /// armed at a time, whichever vCPU asks) and by detach (which waits for arming in progress).
    let catalog = Mutex(SiteCatalog())
    /// Whether the C++ operators are armed, or only the C allocator's entry points (outside the
    /// catalog's lock: the state is saved while a file is armed).
    let includesOperators: Atomic<Bool>
    /// Called after new breakpoints are entered in the table and before they are written.
    let writeAhead = Mutex<(@Sendable () -> Void)?>(nil)
    /// The exitless path, when the machine has a monitor region: release entries get its jumps
    /// instead of an `int3` where their page has room.
    let exitless: ExitlessPath?
    /// With the exitless path: the `operator new` wrappers left unarmed, named by call site.
    let callSiteWrappers = Mutex(CallSiteWrappers())

    static let ftraceNop: [UInt8] = [0x0F, 0x1F, 0x44, 0x00, 0x00]

    init(kernel: GuestKernel, files: GuestSymbolFiles, notes: TrackerNotes, includeOperators: Bool, exitless: ExitlessPath? = nil) {
        self.exitless = exitless
        self.kernel = kernel
        self.files = files
        self.notes = notes
        self.includesOperators = Atomic(includeOperators)
    }

    /// Changes which entry points are armed from now on.
    func setIncludesOperators(_ value: Bool) {
        includesOperators.store(value, ordering: .relaxed)
    }

    /// The breakpoint whose `int3` is at `physical`, if it is one of ours.
    func site(at physical: GuestPhysicalAddress) -> ArmedSite? { table.withLock { $0.sites[physical] } }

    /// The kernel hook at `address`, if it is one of ours.
    func hook(at address: GuestVirtualAddress) -> KernelHook? { table.withLock { $0.hooks[address] } }

    /// The addresses of the kernel hooks planted now, ascending.
    func hookAddresses() -> [UInt64] { table.withLock { $0.hooks.keys.map(\.rawValue).sorted() } }

    /// How many breakpoints are armed and in which guest files.
    func armedSites() -> (count: Int, files: [String]) {
        table.withLock { t in (t.sites.count, Array(Set(t.sites.values.map(\.guestPath))).sorted()) }
    }

    /// Replaces the ftrace `nopl` of `mmap_region` and `exit_mmap` (required) and of `do_exit`
    /// (optional: without it, an exit scan has only the last thread's registers; a note says so)
    /// with `out 0xEB, al`.
    func armKernelHooks(view: KernelView, memory: GuestMemory) throws(TrackerError) -> Int {
        var count = 0
        for kind in [KernelHook.Kind.mmapRegion, .exitMmap, .doExit] {
            let address: GuestVirtualAddress, physical: GuestPhysicalAddress, bytes: [UInt8]
            do throws(TrackerError) {
                do { address = try view.symbol(kind.rawValue) } catch { throw .kernel(error) }
                do { physical = try view.space.translate(address).physicalAddress } catch { throw .translation(error) }
                do { bytes = try memory.read(at: physical, count: 5) } catch { throw .memory(error) }
                guard bytes == Self.ftraceNop else { throw .kernelHook(kind.rawValue, firstBytes: bytes) }
            } catch {
                guard kind == .doExit else { throw error }
                notes.add("exit scans see only the last thread's registers: do_exit cannot be hooked (\(error))")
                continue
            }
            rememberPage(physical, memory: memory)
            do { try memory.write(KernelHookPort.instruction, at: physical) } catch { throw .memory(error) }
            table.withLock {
                $0.hooks[address] = KernelHook(kind: kind, address: address, physical: physical, original: Array(bytes.prefix(2)))
            }
            count += 1
        }
        return count
    }

    /// Keeps a copy of the page holding `address` before the monitor first writes into it.
    private func rememberPage(_ address: GuestPhysicalAddress, memory: GuestMemory) {
        let page = address.alignedDown(to: 4096)
        guard table.withLock({ $0.pagesBefore[page] == nil }),
              let bytes = try? memory.read(at: page, count: 4096) else { return }
        table.withLock { t in if t.pagesBefore[page] == nil { t.pagesBefore[page] = bytes } }
    }

    /// Arms the allocator functions of an open file (`struct file *`), once per inode. One file
    /// at a time, whichever vCPU asks. Returns how many breakpoints it wrote.
    func considerFile(_ file: UInt64, view: KernelView, memory: GuestMemory) -> Int {
        catalog.withLock { armFile(file, catalog: &$0, view: view, memory: memory) }
    }

    private func armFile(_ file: UInt64, catalog: inout SiteCatalog, view: KernelView, memory: GuestMemory) -> Int {
        guard let locator = try? PageCacheLocator(view: view), let inode = try? locator.inode(ofFile: file),
              let mapping = try? locator.mapping(ofFile: file) else { return 0 }
        let state = table.withLock { $0.files[inode] }
        let path: String
        var wanted: [AllocatorSite]
        switch state {
        case .nothingToArm?: return 0
        case .armed?:
            let lost = revalidate(inode: inode, locator: locator, memory: memory)
            guard !lost.isEmpty, let somePath = table.withLock({ $0.sites.values.first { $0.inode == inode }?.guestPath })
                ?? (try? view.path(ofFile: file)) else { return 0 }
            (path, wanted) = (somePath, lost)
        case .partial(let p, let missing)?:
            (path, wanted) = (p, missing + revalidate(inode: inode, locator: locator, memory: memory))
        case nil:
            guard let guestPath = try? view.path(ofFile: file) else { return 0 }
            path = guestPath
            guard let host = files.hostPath(forGuest: path) else {
                table.withLock { $0.files[inode] = .nothingToArm }
                return 0
            }
            wanted = catalog.sites(inHostFile: host, guestPath: path, includesOperators: includesOperators.load(ordering: .relaxed),
                                   note: notes.add)
            if exitless != nil {
                // libstdc++'s `operator new(size_t)` is named from its `malloc`'s call site instead.
                let wrappers = CallSiteWrappers.wrappers(in: wanted, hostPath: host)
                callSiteWrappers.withLock { w in wrappers.forEach { w.add($0, hostPath: host) } }
                wanted.removeAll { site in wrappers.contains { $0.entry == site.fileOffset } }
            }
            if wanted.isEmpty {
                table.withLock { $0.files[inode] = .nothingToArm }
                return 0
            }
        }
        var missing: [AllocatorSite] = []
        var prepared: [ArmedSite] = []
        var exitlessArmed = 0
        let hostPath = exitless == nil ? nil : files.hostPath(forGuest: path)
        for site in wanted {
            guard let page = try? locator.cachedPage(inMapping: mapping, pageIndex: site.fileOffset >> 12) else {
                missing.append(site)
                continue
            }
            if let exitless, let hostPath, ExitlessStub.supports(site.entryPoint.function) {
                switch armExitless(site, frame: page, hostPath: hostPath, path: path, inode: inode, mapping: mapping,
                                   view: view, memory: memory, exitless: exitless) {
                case .armed?: exitlessArmed += 1; continue
                case .alreadyArmed?, .differs?: continue
                case .unreadable?: missing.append(site); continue
                case nil: break        // no room: the int3
                }
            }
            switch prepareSite(site, physical: GuestPhysicalAddress(page.rawValue | (site.fileOffset & 0xFFF)), path: path,
                               inode: inode, mapping: mapping, memory: memory) {
            case .armed(let armed): prepared.append(armed)
            case .unreadable: missing.append(site)
            case .alreadyArmed, .differs: break
            }
        }
        // Write-ahead: the table holds every breakpoint about to be written, and whoever keeps it
        // on disk is told, before the first `int3` reaches the guest.
        if !prepared.isEmpty { writeAhead.withLock { $0 }?() }
        var armedCount = 0
        for armed in prepared {
            if (try? memory.write([0xCC], at: armed.physical)) != nil {
                armedCount += 1
            } else {
                table.withLock { $0.forget(armed) }
                missing.append(armed.site)
            }
        }
        table.withLock { t in
            let total = t.sites.values.filter { $0.inode == inode }.count + t.exitless.values.filter { $0.inode == inode }.count
            t.files[inode] = missing.isEmpty ? .armed(sites: total) : .partial(path: path, missing: missing)
        }
        return armedCount + exitlessArmed
    }

    /// Writes the exitless jumps of `site` into its page-cache page `frame` (the push, the
    /// call, the hops, then the entry's 2 bytes in one store), if the exitless path prepared it and the guest's
    /// bytes are the host copy's. Nil when the site is to get its `int3` instead.
    private func armExitless(_ site: AllocatorSite, frame: GuestPhysicalAddress, hostPath: String, path: String, inode: UInt64,
                             mapping: UInt64, view: KernelView, memory: GuestMemory, exitless: ExitlessPath) -> ExitlessArming? {
        let entryPhysical = frame.offset(Int(site.fileOffset & 0xFFF))
        if table.withLock({ $0.exitless[entryPhysical] != nil }) { return .alreadyArmed }
        guard let patches = exitless.prepare(site, hostPath: hostPath, root: view.space.root, mode: view.mode, memory: memory,
                                             note: notes.add) else { return nil }
        let armed = ExitlessArmedSite(site: site, guestPath: path, inode: inode, mapping: mapping, frame: frame, patches: patches)
        for run in armed.runs {
            guard let bytes = try? memory.read(at: run.physical, count: run.original.count) else { return .unreadable }
            guard bytes == run.original, run.original.count == run.written.count else {
                notes.add("\(path): \(site.symbol) in the guest differs from the host copy; not armed")
                return .differs
            }
        }
        rememberPage(entryPhysical, memory: memory)
        table.withLock { $0.exitless[entryPhysical] = armed }
        writeAhead.withLock { $0 }?()
        let runs = armed.runs
        do {
            // Last run first: nothing reaches a run before the one leading to it is written.
            for run in runs.dropFirst().reversed() { try memory.write(run.written, at: run.physical) }
            try armed.storeEntry(runs[0].written, memory: memory)
        } catch {
            for run in runs.reversed() { try? memory.write(run.original, at: run.physical) }
            table.withLock { $0.forget(armed) }
            return .unreadable
        }
        return .armed
    }

    enum ExitlessArming { case armed, alreadyArmed, differs, unreadable }

    enum SiteArming { case armed(ArmedSite), alreadyArmed, differs, unreadable }

    /// Enters the breakpoint of `site` at `physical` (in the file's page `site.fileOffset >> 12`)
    /// in the table, not yet in the guest, if the guest's bytes there are the host copy's first
    /// instruction.
    private func prepareSite(_ site: AllocatorSite, physical: GuestPhysicalAddress, path: String, inode: UInt64,
                             mapping: UInt64, memory: GuestMemory) -> SiteArming {
        guard let bytes = try? memory.read(at: physical, count: site.instruction.length) else { return .unreadable }
        if bytes.first == 0xCC, table.withLock({ $0.sites[physical] != nil }) { return .alreadyArmed }
        guard bytes == site.instruction.bytes else {
            notes.add("\(path): \(site.symbol) in the guest differs from the host copy; not armed")
            return .differs
        }
        rememberPage(physical, memory: memory)
        let armed = ArmedSite(site: site, physical: physical, original: bytes[0], guestPath: path,
                              inode: inode, mapping: mapping)
        table.withLock { $0.sites[physical] = armed }
        return .armed(armed)
    }

    /// Checks every breakpoint of the file `inode` against its page cache now (the file is being
    /// mapped): a page replaced by another frame (the file was rewritten, or evicted and read
    /// again) is re-armed in the new frame and the old frame forgotten, never written again; a
    /// byte the guest wrote over our `int3` is armed again if it is the original instruction.
    /// Returns the sites whose page is not cached now (armed when the file is mapped again).
    func revalidate(inode: UInt64, locator: PageCacheLocator, memory: GuestMemory) -> [AllocatorSite] {
        let sites = table.withLock { $0.sites.values.filter { $0.inode == inode } }
        var cachedFrames: [UInt64: GuestPhysicalAddress?] = [:]     // page index → frame cached there now
        var lost: [AllocatorSite] = []
        // Exitless entries: all three runs in place, or the entry is armed again (the same padding
        // and stub) once its page is cached again; nothing is written into a frame that moved.
        for armed in table.withLock({ $0.exitless.values.filter { $0.inode == inode } }) {
            guard case .success(let cached) = Self.cachedFrame(locator, mapping: armed.mapping, pageIndex: armed.pageIndex) else { continue }
            let state = armed.state(cachedFrame: cached, memory: memory)
            guard state != .inPlace else { continue }
            table.withLock { $0.forget(armed) }
            notes.add("\(armed.guestPath): \(armed.site.symbol) (exitless) at frame \(hex(armed.frame.rawValue)): \(state); re-arming")
            if state != .overwritten { lost.append(armed.site) }
        }
        for armed in sites {
            let cached: GuestPhysicalAddress?
            if let known = cachedFrames[armed.pageIndex] {
                cached = known
            } else {
                // An unreadable page cache says nothing about the breakpoint: leave it as it is.
                guard case .success(let lookup) = Self.cachedFrame(locator, armed) else { continue }
                cached = lookup
                cachedFrames[armed.pageIndex] = cached
            }
            let byte = (try? memory.read(at: armed.physical, count: 1))?.first
            let state = armed.state(cachedFrame: cached, byte: byte)
            guard state != .inPlace else { continue }
            table.withLock { $0.forget(armed) }
            notes.add("\(armed.guestPath): \(armed.site.symbol) at frame \(hex(armed.frame.rawValue)): \(state); re-arming")
            switch state {
            case .inPlace: break
            case .evicted: lost.append(armed.site)
            case .moved(let frame):
                let physical = GuestPhysicalAddress(frame.rawValue | (armed.site.fileOffset & 0xFFF))
                if !rearm(armed, at: physical, memory: memory) { lost.append(armed.site) }
            case .overwritten:
                if !rearm(armed, at: armed.physical, memory: memory) { lost.append(armed.site) }
            }
        }
        return lost
    }

    /// Arms `armed`'s site again at `physical` (table, write-ahead, `int3`): false when its bytes
    /// cannot be read or written.
    private func rearm(_ armed: ArmedSite, at physical: GuestPhysicalAddress, memory: GuestMemory) -> Bool {
        switch prepareSite(armed.site, physical: physical, path: armed.guestPath, inode: armed.inode, mapping: armed.mapping,
                           memory: memory) {
        case .armed(let again):
            writeAhead.withLock { $0 }?()
            if (try? memory.write([0xCC], at: again.physical)) != nil { return true }
            table.withLock { $0.forget(again) }
            return false
        case .unreadable: return false
        case .alreadyArmed, .differs: return true
        }
    }

    /// The frame the page cache of `armed`'s file holds at its page index now (nil: not cached),
    /// or the failure to read the page cache.
    static func cachedFrame(_ locator: PageCacheLocator, _ armed: ArmedSite) -> Result<GuestPhysicalAddress?, IntrospectionError> {
        cachedFrame(locator, mapping: armed.mapping, pageIndex: armed.pageIndex)
    }

    static func cachedFrame(_ locator: PageCacheLocator, mapping: UInt64, pageIndex: UInt64) -> Result<GuestPhysicalAddress?, IntrospectionError> {
        do {
            return .success(try locator.cachedPage(inMapping: mapping, pageIndex: pageIndex))
        } catch {
            return .failure(error)
        }
    }
}
