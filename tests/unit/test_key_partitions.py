from aiokafka.partitioner import DefaultPartitioner

from shared.kafka import KeyPartitions


def test_a_key_goes_where_the_producers_own_partitioner_sends_it() -> None:
    partitions = KeyPartitions(max_keys_per_topic=50)
    keys = [f"cus_{n}".encode() for n in range(200)]  # more keys than it remembers
    for count in (3, 12):
        partition_of = partitions.of_topic("touchpoint.events.v1", list(range(count)))
        expected = [DefaultPartitioner()(key, list(range(count)), None) for key in keys]
        assert [partition_of(key) for key in keys] == expected
        assert [partition_of(key) for key in keys] == expected  # remembered, the same
    assert len(set(expected)) == 12
