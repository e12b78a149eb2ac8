/// A first-in, first-out queue whose first element is taken in constant time: an array's
/// `removeFirst()` moves every element after it, so taking 50,000 jobs waiting for one
/// receiver one by one cost the square of that.
struct FIFO<Element>: Sequence {
    private var storage: [Element] = []
    /// Where the queue begins in `storage`: what is before it was taken.
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { head == storage.count }
    var first: Element? { isEmpty ? nil : storage[head] }

    mutating func append(_ element: Element) {
        storage.append(element)
    }

    mutating func popFirst() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            // What was taken is dropped once it is half the storage: each element is moved
            // at most about once more.
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    mutating func popLast() -> Element? {
        guard !isEmpty else { return nil }
        let element = storage.removeLast()
        if isEmpty { removeAll() }
        return element
    }

    mutating func removeAll() {
        storage.removeAll()
        head = 0
    }

    mutating func removeAll(where shouldBeRemoved: (Element) throws -> Bool) rethrows {
        storage.removeFirst(head)
        head = 0
        try storage.removeAll(where: shouldBeRemoved)
    }

    func makeIterator() -> ArraySlice<Element>.Iterator {
        storage[head...].makeIterator()
    }
}

extension FIFO: ExpressibleByArrayLiteral {
    init(arrayLiteral elements: Element...) {
        storage = elements
    }
}

extension FIFO: Equatable where Element: Equatable {
    static func == (left: FIFO, right: FIFO) -> Bool {
        left.elementsEqual(right)
    }
}

extension FIFO: Sendable where Element: Sendable {}

extension FIFO {
    init(_ elements: [Element]) {
        storage = elements
    }
}
