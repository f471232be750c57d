extension BTF {
    /// All structs and unions with this tag name, in id order; if there are none, those that typedefs
    /// of this name resolve to (e.g. `atomic_t`). Forward declarations are not included.
    public func structures(named name: String) throws(BTFError) -> [BTFStructure] {
        let ids = typeIDs(named: name)
        var direct: [BTFStructure] = [], viaTypedef: [BTFStructure] = []
        for id in ids {
            let kind = try record(id).kind
            if kind.isComposite {
                direct.append(try composite(id, name: name))
            } else if kind == .typedef, direct.isEmpty {
                let resolved = try resolvedID(id)
                if resolved != .void, try record(resolved).kind.isComposite {
                    viaTypedef.append(try composite(resolved, name: name))
                }
            }
        }
        return direct.isEmpty ? viaTypedef : direct
    }

    /// The struct or union with this name (see `structures(named:)`); throws if there are several.
    /// (The 6.1 kernel has a few file-local duplicates such as `irq_info` and `remap_data`.)
    public func structure(named name: String) throws(BTFError) -> BTFStructure {
        let found = try structures(named: name)
        guard let first = found.first else { throw .noSuchType(name) }
        guard found.count == 1 else { throw .ambiguousType(name, found.map(\.id)) }
        return first
    }

    /// Size in bytes of the struct or union with this name.
    public func size(ofStructure name: String) throws(BTFError) -> Int {
        try structure(named: name).size
    }

    /// The direct members of struct or union `id` (after peeling typedefs and qualifiers), in order.
    public func members(of id: BTFTypeID) throws(BTFError) -> [BTFField] {
        let r = try compositeRecord(id)
        var fields: [BTFField] = []
        fields.reserveCapacity(r.vlen)
        for index in 0..<r.vlen {
            let m = try r.member(index, in: types)
            fields.append(BTFField(
                name: try string(m.nameOffset, of: r.id), bitOffset: m.bitOffset,
                bitfieldSize: m.bitfieldSize == 0 ? nil : m.bitfieldSize, type: m.type))
        }
        return fields
    }

    /// The STRUCT or UNION record `id` resolves to.
    func compositeRecord(_ id: BTFTypeID) throws(BTFError) -> BTFRecord {
        let resolved = try resolvedID(id)
        guard resolved != .void else { throw .unexpectedKind(id, nil) }
        let r = try record(resolved)
        guard r.kind.isComposite else { throw .unexpectedKind(resolved, r.kind) }
        return r
    }

    /// The struct or union `id`, which must be one; anonymous ones take `name` (their typedef's).
    private func composite(_ id: BTFTypeID, name: String) throws(BTFError) -> BTFStructure {
        let r = try compositeRecord(id)
        let tag = try string(r.nameOffset, of: r.id)
        return BTFStructure(id: r.id, name: tag.isEmpty ? name : tag, size: r.size, isUnion: r.kind == .union)
    }
}
