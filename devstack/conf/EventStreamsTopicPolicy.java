// The local Kafka refuses topics IBM Event Streams would refuse (create.topic.policy.class.name): only six
// settings may be given at creation, each within the Standard plan's range — IBM Cloud docs, Event Streams
// FAQ "How do I use Kafka APIs to create and delete topics?". The same table in Python:
// streams/config/kafka_profile.py EVENT_STREAMS_SETTINGS. The broker's own topics (__consumer_offsets, ...) are
// not the client's to create and are left alone. devstack/stack/kafka_secure.py compiles this at stack start.
import java.util.Map;

import org.apache.kafka.common.errors.PolicyViolationException;
import org.apache.kafka.server.policy.CreateTopicPolicy;

public class EventStreamsTopicPolicy implements CreateTopicPolicy {
    private static final long HOUR = 3_600_000L;
    private static final long KIB = 1024L;
    private static final long MIB = 1024L * KIB;
    private static final long GIB = 1024L * MIB;

    @Override
    public void configure(Map<String, ?> configs) {
    }

    @Override
    public void close() {
    }

    @Override
    public void validate(RequestMetadata request) throws PolicyViolationException {
        if (request.topic().startsWith("__")) {
            return;
        }
        for (Map.Entry<String, String> entry : request.configs().entrySet()) {
            String problem = problem(entry.getKey(), entry.getValue());
            if (problem != null) {
                throw new PolicyViolationException("topic " + request.topic() + ": " + problem
                        + " (IBM Event Streams rules, enforced by the local stack)");
            }
        }
    }

    static String problem(String name, String value) {
        switch (name) {
            case "cleanup.policy":
                return value.equals("delete") || value.equals("compact") || value.equals("delete,compact")
                        ? null : name + "=" + value + ": must be delete, compact or delete,compact";
            case "retention.ms":
                return range(name, value, HOUR, 30 * 24 * HOUR, HOUR, "Standard: 1 hour to 30 days, in whole hours");
            case "retention.bytes":
                return range(name, value, 100 * KIB, GIB, 1, "Standard: 100 KiB to 1 GiB");
            case "segment.bytes":
                return range(name, value, 100 * KIB, 512 * MIB, 1, "Standard: 100 KiB to 512 MiB");
            case "segment.index.bytes":
                return range(name, value, 100 * KIB, 100 * MIB, 1, "Standard: 100 KiB to 100 MiB");
            case "segment.ms":
                return range(name, value, 5 * 60_000L, 30 * 24 * HOUR, 1, "5 minutes to 30 days");
            default:
                return "setting '" + name + "' is not allowed (Event Streams accepts only cleanup.policy, "
                        + "retention.ms, retention.bytes, segment.bytes, segment.index.bytes, segment.ms)";
        }
    }

    private static String range(String name, String value, long low, long high, long multiple, String rule) {
        long number;
        try {
            number = Long.parseLong(value.trim());
        } catch (NumberFormatException e) {
            return name + "=" + value + ": not a number";
        }
        if (number < low || number > high || number % multiple != 0) {
            return name + "=" + value + ": must be " + rule;
        }
        return null;
    }
}
