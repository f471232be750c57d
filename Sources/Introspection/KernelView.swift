import X86
import GuestMemory

/// The guest kernel as it stands during one pause: reads through the kernel's page tables, with
/// the KASLR slide worked out from IA32_LSTAR (`entry_SYSCALL_64` at run time vs link time).
/// Caches translations, so it must not outlive the pause it was made in.
public struct KernelView: Sendable {
    public let kernel: GuestKernel
    public let memory: GuestMemory
    public let vcpus: [VCPUSnapshot]
    public let space: AddressSpace
    public let mode: PageTableMode
    /// Run-time minus link-time address of kernel text and data.
    public let slide: UInt64
    let cache: TranslationCache
    /// Loaded modules as read during this pause (`cachedModules()`).
    let moduleCache: KernelModuleCache

    public init(kernel: GuestKernel, memory: GuestMemory, vcpus: [VCPUSnapshot]) throws(IntrospectionError) {
        guard let cpu = vcpus.first else { throw .inconsistent("no vCPU state was captured") }
        guard cpu.systemCallEntry != 0 else {
            throw .inconsistent("the guest kernel has not set up system calls yet (still booting)")
        }
        guard let entry = kernel.symbols.address(of: "entry_SYSCALL_64") else { throw .missingSymbol("entry_SYSCALL_64") }
        self.kernel = kernel
        self.memory = memory
        self.vcpus = vcpus
        self.mode = PageTableMode(cr4: cpu.cr4)
        self.cache = TranslationCache()
        self.moduleCache = KernelModuleCache()
        self.space = AddressSpace(memory: memory, root: PageTableRoot(cr3: cpu.cr3), mode: mode, cache: cache)
        self.slide = cpu.systemCallEntry &- entry
        guard slide & 0xFFF == 0 else {
            throw .inconsistent("IA32_LSTAR 0x\(String(cpu.systemCallEntry, radix: 16)) is not entry_SYSCALL_64 of this kernel image")
        }
    }

    /// Run-time address of a kernel symbol.
    public func symbol(_ name: String) throws(IntrospectionError) -> GuestVirtualAddress {
        guard let link = kernel.symbols.address(of: name) else { throw .missingSymbol(name) }
        return GuestVirtualAddress(link &+ slide)
    }

    /// `name+0xoff` for a run-time kernel address, if it lies in the kernel image or in a loaded
    /// module (`locate(kernelAddress:)` also names the module).
    public func describe(kernelAddress address: UInt64) -> (name: String, offset: UInt64)? {
        locate(kernelAddress: address).map { ($0.name, $0.offset) }
    }

    /// The symbol a run-time kernel address lies in, and the module it belongs to (nil for the
    /// kernel image): a loaded module's own kallsyms for module memory, the kernel's otherwise.
    public func locate(kernelAddress address: UInt64) -> KernelAddressSymbol? {
        if let details = cachedModuleDetails(containing: address) {
            let region = details.module.initRange.map { $0.contains(address) ? $0 : details.module.coreRange } ?? details.module.coreRange
            guard let (symbol, offset) = details.symbols.symbol(containing: address, within: region) else { return nil }
            return KernelAddressSymbol(name: symbol.name, offset: offset, module: details.module.name)
        }
        return kernel.symbols.symbol(containing: address &- slide).map { KernelAddressSymbol(name: $0.symbol.name, offset: $0.offset, module: nil) }
    }

    // MARK: typed reads of kernel memory

    /// The address of the member at `offset` of an object at `base`, a pointer read from the guest:
    /// an object that would run past the top of the address space is corrupt, never a trap.
    func member(_ base: UInt64, _ offset: Int, _ what: @autoclosure () -> String) throws(IntrospectionError) -> UInt64 {
        let (address, overflow) = base.addingReportingOverflow(UInt64(truncatingIfNeeded: offset))
        guard !overflow, offset >= 0 else {
            throw .inconsistent("\(what()) of the object at 0x\(String(base, radix: 16)) lies past the top of the address space")
        }
        return address
    }

    func u64(_ address: UInt64, _ what: @autoclosure () -> String) throws(IntrospectionError) -> UInt64 {
        do { return try space.load(UInt64.self, at: GuestVirtualAddress(address)) } catch { throw .read(what(), error) }
    }

    func u32(_ address: UInt64, _ what: @autoclosure () -> String) throws(IntrospectionError) -> UInt32 {
        do { return try space.load(UInt32.self, at: GuestVirtualAddress(address)) } catch { throw .read(what(), error) }
    }

    func words(_ address: UInt64, _ count: Int, _ what: @autoclosure () -> String) throws(IntrospectionError) -> [UInt64] {
        do { return try space.readWords(at: GuestVirtualAddress(address), count: count) } catch { throw .read(what(), error) }
    }

    func bytes(_ address: UInt64, _ count: Int, _ what: @autoclosure () -> String) throws(IntrospectionError) -> [UInt8] {
        do { return try space.read(GuestVirtualAddress(address), count: count) } catch { throw .read(what(), error) }
    }

    /// A pointer read from the guest that must point into the kernel half.
    func kernelPointer(_ address: UInt64, _ what: @autoclosure () -> String) throws(IntrospectionError) -> UInt64 {
        let value = try u64(address, what())
        guard value >= 0xFFFF_8000_0000_0000 else {
            throw .inconsistent("\(what()) is 0x\(String(value, radix: 16)), not a kernel address")
        }
        return value
    }

    /// The page tables of a user address space whose `pgd` (a kernel virtual address) is given.
    public func userSpace(pgd: UInt64) throws(IntrospectionError) -> AddressSpace {
        AddressSpace(memory: memory, root: PageTableRoot(tableAddress: GuestPhysicalAddress(try physicalAddress(ofPageTable: pgd))),
                     mode: mode, cache: cache)
    }

    /// Guest-physical address of a page table the kernel reaches at virtual address `pgd`.
    func physicalAddress(ofPageTable pgd: UInt64) throws(IntrospectionError) -> UInt64 {
        do { return try space.translate(GuestVirtualAddress(pgd)).physicalAddress.rawValue } catch {
            throw .read("page table of a process", .translationFailed(error))
        }
    }
}
