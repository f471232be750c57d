extension BTF {
    /// The id reached by following typedefs, qualifiers and type tags from `id` (at most 32 steps).
    public func resolvedID(_ id: BTFTypeID) throws(BTFError) -> BTFTypeID {
        var current = id
        for _ in 0..<Self.maxDepth {
            if current == .void { return current }
            let r = try record(current)
            guard r.kind.isReference else { return current }
            current = r.type
        }
        throw .resolveDepthExceeded(id)
    }

    /// What `id` is once typedefs, qualifiers and type tags are peeled off.
    public func resolve(_ id: BTFTypeID) throws(BTFError) -> BTFResolvedType {
        let resolved = try resolvedID(id)
        if resolved == .void { return .void }
        let r = try record(resolved)
        switch r.kind {
        case .integer: return .integer(try r.integer(in: types))
        case .pointer: return .pointer(pointee: r.type)
        case .array:
            let info = try r.arrayInfo(in: types)
            return .array(element: info.element, count: info.count)
        case .structure: return .structure(resolved)
        case .union: return .union(resolved)
        case .enumeration, .enumeration64: return .enumeration(resolved)
        case .forward: return .forward(isUnion: r.kindFlag)
        case .float: return .float(size: r.size)
        case .function, .functionPrototype: return .function(resolved)
        case .variable, .dataSection, .declarationTag: throw .notADataType(resolved, r.kind)
        case .typedef, .volatile, .const, .restrict, .typeTag: throw .resolveDepthExceeded(id)
        }
    }

    /// Size in bytes of a value of type `id` (pointers are `BTF.pointerSize`).
    public func size(of id: BTFTypeID) throws(BTFError) -> Int {
        try size(of: id, depth: 0)
    }

    private func size(of id: BTFTypeID, depth: Int) throws(BTFError) -> Int {
        guard depth < Self.maxDepth else { throw .resolveDepthExceeded(id) }
        let resolved = try resolvedID(id)
        guard resolved != .void else { throw .unsizedType(id) }
        let r = try record(resolved)
        switch r.kind {
        case .integer, .structure, .union, .enumeration, .enumeration64, .float, .dataSection: return r.size
        case .pointer: return Self.pointerSize
        case .array:
            let info = try r.arrayInfo(in: types)
            let element = try size(of: info.element, depth: depth + 1)
            let (total, overflow) = element.multipliedReportingOverflow(by: info.count)
            guard !overflow else { throw .sizeOverflow(id) }
            return total
        default: throw .unsizedType(id)
        }
    }
}
