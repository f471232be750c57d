/// The validated `struct btf_header`: where the type and string sections are in the data.
struct BTFHeader: Sendable {
    static let magic: UInt16 = 0xEB9F
    static let minimumLength = 24

    let typeStart: Int, typeEnd: Int
    let stringStart: Int, stringEnd: Int

    init(_ data: [UInt8]) throws(BTFError) {
        guard data.count >= Self.minimumLength else { throw .truncatedHeader(size: data.count) }
        let bytes = BTFBytes(bytes: Array(data[0..<Self.minimumLength]))
        let magic = try bytes.u16(at: 0)
        guard magic != Self.magic.byteSwapped else { throw .bigEndian }
        guard magic == Self.magic else { throw .badMagic(magic) }
        let version = try bytes.u8(at: 2)
        guard version == 1 else { throw .unsupportedVersion(version) }
        let headerLength = try bytes.u32(at: 4)
        guard headerLength >= Self.minimumLength, headerLength <= data.count else {
            throw .badHeaderLength(headerLength, size: data.count)
        }
        let available = data.count - Int(headerLength)
        func section(_ which: BTFSection, at offsetField: Int) throws(BTFError) -> (Int, Int) {
            let offset = try bytes.u32(at: offsetField), length = try bytes.u32(at: offsetField + 4)
            guard Int(offset) + Int(length) <= available else {
                throw .sectionOutOfBounds(which, offset: offset, length: length, available: available)
            }
            return (Int(headerLength) + Int(offset), Int(headerLength) + Int(offset) + Int(length))
        }
        (typeStart, typeEnd) = try section(.types, at: 8)
        (stringStart, stringEnd) = try section(.strings, at: 16)
    }
}
