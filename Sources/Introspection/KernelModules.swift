import BTF

extension KernelView {
    /// Bound on the modules walked (a real guest has tens).
    static let maximumModules = 4096

    /// Every module on the kernel's `modules` list, in list order (most recently loaded first).
    /// Light: a few reads per module. Callable whenever the view is (the guest paused); loops,
    /// runaway lists and implausible layouts end in a typed error.
    public func loadedModules() throws(IntrospectionError) -> [LoadedKernelModule] {
        let m = try moduleLayout()
        let head = try symbol("modules").rawValue
        var seen: Set<UInt64> = []
        var result: [LoadedKernelModule] = []
        var link = try kernelPointer(head, "modules.next")
        while link != head {
            guard seen.insert(link).inserted, result.count < Self.maximumModules else {
                throw .inconsistent("the module list loops or exceeds \(Self.maximumModules) entries")
            }
            result.append(try module(at: link &- UInt64(m.list), layout: m))
            link = try kernelPointer(link, "module.list.next")
        }
        return result
    }

    /// The module whose memory (core or init region) holds `address`, among `modules`.
    public func module(containing address: UInt64, among modules: [LoadedKernelModule]) -> LoadedKernelModule? {
        modules.first { $0.contains(address) }
    }

    func moduleLayout() throws(IntrospectionError) -> KernelLayout.Module {
        do { return try kernel.layout.module.get() } catch { throw .layout(error) }
    }

    /// Reads one `struct module`.
    func module(at address: UInt64, layout m: KernelLayout.Module) throws(IntrospectionError) -> LoadedKernelModule {
        let raw = try bytes(try member(address, m.name, "module.name"), m.nameLength, "module.name")
        let name = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        let state = LoadedKernelModule.State(raw: try u32(try member(address, m.state, "module.state"), "module.state"))
        func region(_ r: KernelLayout.Module.Region, _ what: String) throws(IntrospectionError)
            -> (all: Range<UInt64>, text: Range<UInt64>, rodata: Range<UInt64>, roAfterInit: Range<UInt64>, data: Range<UInt64>)?
        {
            let base = try u64(try member(address, r.base, "module.\(what).base"), "module.\(what).base")
            func size(_ offset: Int, _ field: String) throws(IntrospectionError) -> UInt64 {
                UInt64(try u32(try member(address, offset, "module.\(what).\(field)"), "module.\(what).\(field)"))
            }
            let total = try size(r.size, "size")
            if base == 0 && total == 0 { return nil }
            return try LoadedKernelModule.regions(base: base, size: total, textSize: try size(r.textSize, "text_size"),
                                                  roSize: try size(r.roSize, "ro_size"),
                                                  roAfterInitSize: try size(r.roAfterInitSize, "ro_after_init_size"),
                                                  what: "module \(name) \(what)")
        }
        guard let core = try region(m.core, "core_layout") else {
            throw .inconsistent("module \(name) has no core region")
        }
        let initial = try region(m.initial, "init_layout")
        return LoadedKernelModule(name: name, address: address, state: state, coreRange: core.all, textRange: core.text,
                                  rodataRange: core.rodata, dataRanges: [core.roAfterInit, core.data].filter { !$0.isEmpty },
                                  initRange: initial?.all, initTextRange: initial?.text)
    }
}
