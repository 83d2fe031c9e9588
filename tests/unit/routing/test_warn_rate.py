from hxgw.routing.warn_rate import WarnRate


def test_a_model_failing_every_request_is_logged_ten_times_a_second_at_most():
    rate = WarnRate()
    said = [rate.take(100.0 + i / 100) for i in range(15)]  # 15 within one second
    assert said[:10] == [0] * 10 and said[10:] == [None] * 5
    assert rate.take(101.2) == 5  # the next second's first line says how many were not


def test_the_lines_after_the_first_of_a_second_say_none_were_left_unsaid():
    rate = WarnRate()
    for i in range(15):
        rate.take(100.0 + i / 100)
    assert (rate.take(101.0), rate.take(101.1)) == (5, 0)
