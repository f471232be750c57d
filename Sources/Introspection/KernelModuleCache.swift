import DebugInfo
import Synchronization

/// What one `KernelView` has read about loaded modules during its pause: the list, and each
/// module's details and host line table once asked for. Lives as long as the view (one pause).
final class KernelModuleCache: Sendable {
    struct State {
        var modules: [LoadedKernelModule]?
        var details: [UInt64: KernelModuleDetails?] = [:]
        var lines: [UInt64: ModuleLineTable?] = [:]
    }
    let state = Mutex(State())
}

extension KernelView {
    /// `loadedModules()`, read once per view; empty when the list cannot be read (symbolization
    /// and unwinding then treat module addresses as unknown).
    func cachedModules() -> [LoadedKernelModule] {
        if let modules = moduleCache.state.withLock({ $0.modules }) { return modules }
        let modules = (try? loadedModules()) ?? []
        moduleCache.state.withLock { $0.modules = modules }
        return modules
    }

    /// The details of the module whose memory holds `address`, read once per view.
    func cachedModuleDetails(containing address: UInt64) -> KernelModuleDetails? {
        guard address >= KernelSymbols.kernelHalf, let module = module(containing: address, among: cachedModules()) else { return nil }
        if let known = moduleCache.state.withLock({ $0.details[module.address] }) { return known }
        let details = try? moduleDetails(of: module)
        moduleCache.state.withLock { $0.details[module.address] = .some(details) }
        return details
    }

    /// File and line of run-time address `pc` in `details`' module, from its host line table
    /// (made once per view, and used only under the cache's lock: a libdwfl session is not
    /// thread-safe); nil without a matching `.ko`.
    func cachedModuleLocation(_ details: KernelModuleDetails, pc: UInt64) -> SymbolizedLocation? {
        let key = details.module.address
        return moduleCache.state.withLock { state -> SymbolizedLocation? in
            if state.lines[key] == nil {
                state.lines[key] = .some(ModuleLineTable(details: details, view: self,
                                                         base: ModuleLineTable.base(forModuleNumber: state.lines.count)))
            }
            return state.lines[key]??.location(of: pc)
        }
    }
}
