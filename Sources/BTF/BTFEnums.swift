extension BTF {
    /// The enumerators of ENUM or ENUM64 `id` (after peeling typedefs and qualifiers), in order.
    public func enumerators(of id: BTFTypeID) throws(BTFError) -> [BTFEnumerator] {
        let resolved = try resolvedID(id)
        guard resolved != .void else { throw .unexpectedKind(id, nil) }
        let r = try record(resolved)
        guard r.kind.isEnumeration else { throw .unexpectedKind(resolved, r.kind) }
        var result: [BTFEnumerator] = []
        result.reserveCapacity(r.vlen)
        for index in 0..<r.vlen {
            let (nameOffset, value) = try r.enumerator(index, in: types)
            result.append(BTFEnumerator(name: try string(nameOffset, of: resolved), value: value))
        }
        return result
    }

    /// The value of `enumerator` in the enum named `enumName` (an enum tag or a typedef of an enum).
    public func enumValue(_ enumName: String, _ enumerator: String) throws(BTFError) -> Int64 {
        var sawEnum = false
        for id in typeIDs(named: enumName) {
            guard try isEnumeration(id) else { continue }
            sawEnum = true
            if let match = try enumerators(of: id).first(where: { $0.name == enumerator }) { return match.value }
        }
        guard sawEnum else { throw .noSuchType(enumName) }
        throw .noSuchEnumerator(enumerator, in: enumName)
    }

    /// Whether `id` is an enum, or a typedef (chain) of one.
    private func isEnumeration(_ id: BTFTypeID) throws(BTFError) -> Bool {
        let r = try record(id)
        guard r.kind == .typedef else { return r.kind.isEnumeration }
        let resolved = try resolvedID(id)
        guard resolved != .void else { return false }
        return try record(resolved).kind.isEnumeration
    }

    /// The value of the enumerator `name` in whichever enum defines it, named or anonymous.
    /// Throws `ambiguousEnumerator` if enums define it with different values.
    public func enumerator(named name: String) throws(BTFError) -> Int64 {
        var values: [Int64] = []
        for id in enumsByEnumerator[name] ?? [] {
            for e in try enumerators(of: id) where e.name == name && !values.contains(e.value) {
                values.append(e.value)
            }
        }
        guard let value = values.first else { throw .noSuchEnumerator(name, in: nil) }
        guard values.count == 1 else { throw .ambiguousEnumerator(name, values: values) }
        return value
    }
}
