extension Dictionary where Value == Int {
    /// One less open for `key`; the key goes when none is left (a count per client, session
    /// or address that would otherwise keep every key it ever saw).
    package mutating func countDown(_ key: Key) {
        if let open = self[key], open > 1 { self[key] = open - 1 } else { self[key] = nil }
    }
}
