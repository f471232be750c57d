/// Binary search over indices `0..<count` ordered so that every index for which `isLow` holds
/// comes first: returns how many do (the first index for which it does not hold).
public func partitionPoint(count: Int, _ isLow: (Int) -> Bool) -> Int {
    var low = 0, high = count
    while low < high {
        let mid = (low + high) / 2
        if isLow(mid) { low = mid + 1 } else { high = mid }
    }
    return low
}
