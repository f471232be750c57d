extension BTF {
    /// The member at a dotted `path` (e.g. `"thread.sp"`) of the struct or union named `structure`.
    public func member(_ structure: String, path: String) throws(BTFError) -> BTFMember {
        try member(in: try self.structure(named: structure).id, path: path, outerName: structure)
    }

    /// The member at a dotted `path` of struct or union `id`. Each component is searched among the
    /// members, descending into anonymous struct/union members; offsets are summed along the path.
    public func member(in id: BTFTypeID, path: String) throws(BTFError) -> BTFMember {
        let resolved = try resolvedID(id)
        let name = resolved == .void ? "" : try type(resolved).name
        return try member(in: id, path: path, outerName: name.isEmpty ? resolved.description : name)
    }

    private func member(in id: BTFTypeID, path: String, outerName: String) throws(BTFError) -> BTFMember {
        let components = path.split(separator: ".", omittingEmptySubsequences: false)
        guard !path.isEmpty, !components.contains(where: \.isEmpty) else { throw .invalidPath(path) }
        var container = id
        var containerName = outerName
        var bitOffset = 0
        var found: Hit?
        for component in components {
            let resolved = try resolvedID(container)
            let r = resolved == .void ? nil : try record(resolved)
            guard let r, r.kind.isComposite else { throw .notComposite(containerName, r?.kind) }
            var visited = Set<BTFTypeID>()
            guard let hit = try find(String(component), in: r, depth: 0, visited: &visited) else {
                throw .noSuchMember(String(component), in: containerName)
            }
            let (sum, overflow) = bitOffset.addingReportingOverflow(hit.bitOffset)
            guard !overflow else { throw .sizeOverflow(resolved) }
            bitOffset = sum
            container = hit.type
            containerName += "." + component
            found = hit
        }
        guard let found else { throw .invalidPath(path) }
        return try makeMember(path: path, hit: found, bitOffset: bitOffset)
    }

    /// A member found in one struct: offset relative to that struct.
    private struct Hit {
        let bitOffset: Int
        let bitfieldSize: Int
        let type: BTFTypeID
    }

    /// Searches `r`'s members for `name`, descending into anonymous structs and unions. Each composite
    /// is searched at most once per call, so crafted data sharing or cycling anonymous types cannot hang.
    private func find(_ name: String, in r: BTFRecord, depth: Int, visited: inout Set<BTFTypeID>) throws(BTFError) -> Hit? {
        guard depth < Self.maxDepth else { throw .nestingTooDeep(r.id) }
        guard visited.insert(r.id).inserted else { return nil }
        for index in 0..<r.vlen {
            let m = try r.member(index, in: types)
            if m.nameOffset != 0 {
                if try string(m.nameOffset, of: r.id) == name {
                    return Hit(bitOffset: m.bitOffset, bitfieldSize: m.bitfieldSize, type: m.type)
                }
                continue
            }
            let inner = try resolvedID(m.type)
            guard inner != .void else { continue }
            let innerRecord = try record(inner)
            guard innerRecord.kind.isComposite,
                  let hit = try find(name, in: innerRecord, depth: depth + 1, visited: &visited) else { continue }
            return Hit(bitOffset: m.bitOffset + hit.bitOffset, bitfieldSize: hit.bitfieldSize, type: hit.type)
        }
        return nil
    }

    private func makeMember(path: String, hit: Hit, bitOffset: Int) throws(BTFError) -> BTFMember {
        let resolved = try resolve(hit.type)
        var bitOffset = bitOffset
        var bitfieldSize = hit.bitfieldSize == 0 ? nil : hit.bitfieldSize
        // Legacy bitfields (struct kind_flag clear): the INT itself carries the width and offset.
        if bitfieldSize == nil, case .integer(let int) = resolved, int.bitOffset != 0 || int.bits != int.size * 8 {
            bitOffset += int.bitOffset
            bitfieldSize = int.bits
        }
        return BTFMember(
            path: path, offset: bitOffset / 8, size: try size(of: hit.type), bitOffset: bitOffset,
            bitfieldSize: bitfieldSize, typeID: hit.type, resolvedTypeID: try resolvedID(hit.type), type: resolved)
    }
}
