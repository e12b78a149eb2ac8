import Foundation

extension TimeZone {
    /// The wall clock reading of this zone at `utcSeconds` after the epoch.
    public func wallSeconds(atUTC utcSeconds: Int64) -> Int64 {
        utcSeconds + Int64(secondsFromGMT(for: Date(timeIntervalSince1970: Double(utcSeconds))))
    }

    /// The instants at which this zone's clock reads `wallSeconds`, earliest first: none
    /// in a gap (the clock jumps forward over it), two in an overlap (the clock goes back).
    /// Assumes at most one offset change within a day of the wall time, as in every real zone.
    public func instants(atWall wallSeconds: Int64) -> [Int64] {
        let before = Int64(secondsFromGMT(for: Date(timeIntervalSince1970: Double(wallSeconds - 86_400))))
        let after = Int64(secondsFromGMT(for: Date(timeIntervalSince1970: Double(wallSeconds + 86_400))))
        var found: [Int64] = []
        for offset in Set([before, after]) {
            let utc = wallSeconds - offset
            if Int64(secondsFromGMT(for: Date(timeIntervalSince1970: Double(utc)))) == offset {
                found.append(utc)
            }
        }
        return found.sorted()
    }
}
