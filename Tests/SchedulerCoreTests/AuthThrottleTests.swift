import SchedulerCore
import Testing

@Suite("Failed authentications throttled per address")
struct AuthThrottleTests {
    @Test("past the limit within the window: refused until the window ends, then counted afresh")
    func window() {
        let throttle = AuthThrottle(limit: 3, window: 60)
        for second in 0..<3 {
            #expect(throttle.retryAfter("192.0.2.1", now: Double(second)) == nil)
            throttle.failed("192.0.2.1", now: Double(second))
        }
        #expect(throttle.retryAfter("192.0.2.1", now: 3) == 57)
        #expect(throttle.retryAfter("192.0.2.2", now: 3) == nil, "another address is not held up")
        #expect(throttle.retryAfter("192.0.2.1", now: 59.5) == 1)
        #expect(throttle.retryAfter("192.0.2.1", now: 60) == nil)
        throttle.failed("192.0.2.1", now: 61)
        #expect(throttle.retryAfter("192.0.2.1", now: 62) == nil, "a new window counts from one")
    }

    @Test("IPv6 addresses count by their /64; IPv4-mapped ones as the IPv4 address")
    func prefixes() {
        #expect(AuthThrottle.key("2001:db8:1:2::1") == AuthThrottle.key("2001:db8:1:2:ffff::7"))
        #expect(AuthThrottle.key("2001:db8:1:2::1") != AuthThrottle.key("2001:db8:1:3::1"))
        #expect(AuthThrottle.key("::ffff:192.0.2.1") == "192.0.2.1")
        let throttle = AuthThrottle(limit: 2)
        throttle.failed("2001:db8:1:2::1", now: 0)
        throttle.failed("2001:db8:1:2::99", now: 0)
        #expect(throttle.retryAfter("2001:db8:1:2::abcd", now: 1) != nil)
    }

    @Test("at most capacity addresses are tracked; expired ones are swept, at most once a second")
    func capacity() {
        let throttle = AuthThrottle(limit: 1, window: 10, capacity: 100)
        for index in 0..<100 { throttle.failed("10.0.0.\(index)", now: 0) }
        throttle.failed("10.0.1.1", now: 1)
        #expect(throttle.tracked == 100, "full: a new address is not tracked")
        #expect(throttle.retryAfter("10.0.1.1", now: 1) == nil)
        throttle.failed("10.0.1.1", now: 11)
        #expect(throttle.tracked == 1, "the expired were swept")
        #expect(throttle.retryAfter("10.0.1.1", now: 11) != nil)
    }
}
