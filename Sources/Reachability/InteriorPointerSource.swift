/// Serves every word that points anywhere inside a block of `index` as that block's start. In the
/// kernel any pointer into an object references it (`list_head`s embedded in objects,
/// `container_of`), so the marker over this source sees only start pointers: no object is ever
/// "possibly lost", and the glibc chunk-header exception of `HeapBlockIndex.block(containing:)`
/// never applies. A word in an object that points into that same object (an empty `list_head`,
/// a back pointer to itself) is dropped, as kmemleak ignores self references: it would make an
/// object whose contents are scanned as roots (one written since the last scan) reference itself.
public struct InteriorPointerSource<Base: KernelMemoryReading>: KernelMemoryReading {
    public var base: Base
    public let index: HeapBlockIndex
    private let span: Range<UInt64>

    public init(_ base: Base, index: HeapBlockIndex) {
        self.base = base
        self.index = index
        self.span = index.span
    }

    public var isIncomplete: Bool { base.isIncomplete }

    /// A word as the marker should see it.
    public func normalized(_ value: UInt64) -> UInt64 {
        guard span.contains(value), let start = index.startOfBlock(containing: value) else { return value }
        return start
    }

    public mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void) {
        let index = self.index, span = self.span
        base.forEachCandidate(in: range) { value in
            if span.contains(value), let start = index.startOfBlock(containing: value) {
                if start == range.lowerBound { return }  // into the object being read: a self reference
                body(start)
            } else {
                body(value)
            }
        }
    }

    public mutating func frames(of range: Range<UInt64>) -> [UInt64]? { base.frames(of: range) }
}
