/// What an address of an address space is: module, function and, with DWARF, source position.
public struct SymbolizedLocation: Sendable, Equatable {
    /// The address looked up.
    public var address: UInt64
    /// The name the module was added with.
    public var module: String
    /// The (out-of-line) function containing the address, from the ELF symbol table.
    public var function: String?
    /// `address` minus the function's start; 0 when `function` is nil.
    public var functionOffset: UInt64
    /// Source file from the DWARF line table, as recorded by the compiler (usually absolute).
    public var file: String?
    public var line: Int?
    public var column: Int?
    /// True when the address is in code inlined into `function`; `file`/`line` are then in the
    /// inlined code and `inlinedFunction` names it.
    public var isInline: Bool
    public var inlinedFunction: String?
    /// For inlined code: the line in `function` itself that the inlining started from (the call
    /// site of the outermost inlined scope), e.g. the caller's line of an inline `kmalloc()`.
    public var outerFile: String?
    public var outerLine: Int?

    public init(
        address: UInt64, module: String, function: String?, functionOffset: UInt64, file: String?, line: Int?,
        column: Int?, isInline: Bool, inlinedFunction: String?, outerFile: String? = nil, outerLine: Int? = nil
    ) {
        self.address = address
        self.module = module
        self.function = function
        self.functionOffset = functionOffset
        self.file = file
        self.line = line
        self.column = column
        self.isInline = isInline
        self.inlinedFunction = inlinedFunction
        self.outerFile = outerFile
        self.outerLine = outerLine
    }
}

/// A module reported to a `Symbolizer`: where its file is and where it sits in the address space.
public struct SymbolizerModule: Sendable, Equatable {
    public var name: String
    public var hostPath: String
    /// First and one-past-last runtime address covered by its `PT_LOAD` segments.
    public var start: UInt64
    public var end: UInt64
    /// Runtime address − link-time address (0 for ET_EXEC).
    public var loadBias: UInt64
}
