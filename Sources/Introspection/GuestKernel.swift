import BTF
/// What the monitor knows about the guest's kernel from its image: symbols (link-time
/// addresses) and structure layouts from BTF. Immutable; shared by every pause.
public final class GuestKernel: Sendable {
    public let symbols: KernelSymbols
    public let layout: KernelLayout
    /// An ELF image of this kernel with DWARF, for file:line of kernel frames (optional).
    public let debugFile: String?
    /// The kernel's ORC unwind tables, when the image has them.
    public let orc: KernelORC?
    /// Host directories searched for loaded modules' `NAME.ko` files (file:line of module code).
    public let moduleDirectories: [String]

    public init(symbols: KernelSymbols, layout: KernelLayout, debugFile: String? = nil, orc: KernelORC? = nil,
                moduleDirectories: [String] = []) {
        self.symbols = symbols
        self.layout = layout
        self.debugFile = debugFile
        self.orc = orc
        self.moduleDirectories = moduleDirectories
    }
}
