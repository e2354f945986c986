%% bench/pg_erlang.erl: the measurements of bench/pg.lua, made on Erlang's pg
%% on the same machine, for comparison (needs Erlang/OTP >= 25.1: erlang-base).
%%
%%   erlc -o /tmp bench/pg_erlang.erl && \
%%     erl -noshell -sname pgbench_a -pa /tmp -s pg_erlang main
%%
%% Rows as in bench/pg.lua: local joins/leaves per second (wall clock; pg:join is
%% a call to the scope process), memory for 100,000 groups of one member
%% (growth of erlang:memory(total) after garbage collection: ETS table and
%% scope process), get_members ns/call with 10 and 100,000 groups, and the time
%% from pg:join on node A until pg:monitor_scope on node B (a peer node started
%% here) delivers the notification, one join per millisecond.
-module(pg_erlang).
-export([main/0, b_side/3]).

-define(N, 100000).
-define(LAT, 1000).
-define(LEAVES, 2000).

main() ->
    Rows = run(),
    io:format("erlang pg: ~b groups, OTP ~s~n", [?N, erlang:system_info(otp_release)]),
    W = lists:max([length(lists:flatten(A)) || {A, _, _} <- Rows]),
    V = lists:max([length(lists:flatten(B)) || {_, B, _} <- Rows]),
    [io:format("~s  ~s  ~s~n", [pad(A, W), lpad(B, V), C]) || {A, B, C} <- Rows],
    halt().

pad(S, W) -> string:pad(lists:flatten(S), W).
lpad(S, W) -> string:pad(lists:flatten(S), W, leading).

rate(N, Us) ->
    X = N / (Us / 1.0e6),
    if X >= 1.0e6 -> io_lib:format("~.2fM/s", [X / 1.0e6]);
       X >= 1.0e4 -> io_lib:format("~bk/s", [round(X / 1.0e3)]);
       true -> io_lib:format("~b/s", [round(X)])
    end.

mib(B) -> io_lib:format("~.1f MiB (~b B/group)", [B / 1048576, round(B / ?N)]).

each(F, L) -> lists:foreach(F, L).

heap() ->
    [erlang:garbage_collect(P) || P <- processes()],
    erlang:memory(total).

idle() -> receive stop -> ok end.

run() ->
    Me = self(),
    SG = [<<"group:", (integer_to_binary(I))/binary>> || I <- lists:seq(1, ?N)],
    TG = [{spec, I} || I <- lists:seq(1, ?N)],
    {ok, _} = pg:start(bench_s),
    {J1, _} = timer:tc(fun() -> each(fun(G) -> pg:join(bench_s, G, Me) end, SG) end),
    %% Erlang's leave is O(groups of the pid): 100,000 leaves of one pid take
    %% minutes, so the rate is measured on the first ?LEAVES.
    {L1, _} = timer:tc(fun() -> each(fun(G) -> pg:leave(bench_s, G, Me) end, lists:sublist(SG, ?LEAVES)) end),
    {ok, _} = pg:start(bench_t),
    {J2, _} = timer:tc(fun() -> each(fun(G) -> pg:join(bench_t, G, Me) end, TG) end),
    {L2, _} = timer:tc(fun() -> each(fun(G) -> pg:leave(bench_t, G, Me) end, lists:sublist(TG, ?LEAVES)) end),
    each(fun(G) -> pg:leave(bench_t, G, Me) end, lists:reverse(lists:nthtail(?LEAVES, TG))),
    Procs = [spawn(fun idle/0) || _ <- lists:seq(1, ?N)],
    {ok, _} = pg:start(bench_p),
    {J3, _} = timer:tc(fun() -> each(fun(P) -> pg:join(bench_p, one, P) end, Procs) end),
    {L3, _} = timer:tc(fun() -> each(fun(P) -> pg:leave(bench_p, one, P) end, lists:reverse(Procs)) end),

    {ok, _} = pg:start(bench_m1),
    B1 = heap(),
    each(fun(G) -> pg:join(bench_m1, G, Me) end, SG),
    M1 = heap() - B1,
    {ok, _} = pg:start(bench_m2),
    B2 = heap(),
    lists:foreach(fun({G, P}) -> pg:join(bench_m2, G, P) end, lists:zip(SG, Procs)),
    M2 = heap() - B2,

    {ok, _} = pg:start(bench_small),
    {ok, _} = pg:start(bench_tsmall),
    each(fun(G) -> pg:join(bench_small, G, Me) end, lists:sublist(SG, 10)),
    each(fun(G) -> pg:join(bench_tsmall, G, Me) end, lists:sublist(TG, 10)),
    each(fun(G) -> pg:join(bench_t, G, Me) end, TG),
    {Small, Big} = compare(bench_small, <<"group:5">>, bench_m1, <<"group:50000">>),
    {TSmall, TBig} = compare(bench_tsmall, {spec, 5}, bench_t, {spec, 50000}),
    Remote = remote(),
    [{"local joins/s, 1 pid x 100k string groups", rate(?N, J1), ""},
     {"local leaves/s, same", rate(?LEAVES, L1), "first 2,000 leaves: O(groups of the pid) each"},
     {"local joins/s, 1 pid x 100k table groups", rate(?N, J2), "groups {spec, I}"},
     {"local leaves/s, same", rate(?LEAVES, L2), "first 2,000 leaves"},
     {"local joins/s, 100k pids x 1 group", rate(?N, J3), ""},
     {"local leaves/s, same (newest first)", rate(?N, L3), ""},
     {"memory, 100k groups x 1 member (one pid)", mib(M1), "group names held by the caller"},
     {"memory, 100k groups x 1 member (own pid each)", mib(M2), "incl. member monitors"},
     {"get_members ns/call, 10 groups in scope", io_lib:format("~b ns", [round(Small)]), ""},
     {"get_members ns/call, 100k groups in scope", io_lib:format("~b ns", [round(Big)]),
      io_lib:format("ratio ~.2f", [Big / Small])},
     {"get_members ns/call, table group, 10 groups", io_lib:format("~b ns", [round(TSmall)]), ""},
     {"get_members ns/call, table group, 100k groups", io_lib:format("~b ns", [round(TBig)]),
      io_lib:format("ratio ~.2f", [TBig / TSmall])}] ++ Remote.

compare(SA, GA, SB, GB) ->
    Reps = 100000,
    T = fun(S, G) ->
                {Us, _} = timer:tc(fun() -> loop(Reps, fun() -> pg:get_members(S, G) end) end),
                Us
        end,
    {A, B} = lists:foldl(fun(_, {BA, BB}) -> {min(BA, T(SA, GA)), min(BB, T(SB, GB))} end,
                         {infinity, infinity}, lists:seq(1, 5)),
    {A * 1000 / Reps, B * 1000 / Reps}.

loop(0, _) -> ok;
loop(N, F) -> F(), loop(N - 1, F).

%% Node B: monitor the scope, report the delay of each notification to A.
b_side(Parent, Scope, K) ->
    {Ref, _} = pg:monitor_scope(Scope),
    ok = pg:join(Scope, ready, self()),
    Parent ! {b_ready, self()},
    Parent ! {lat, collect(Ref, K, [])}.

collect(_, 0, Acc) -> Acc;
collect(Ref, K, Acc) ->
    receive
        {Ref, join, {lat, _, T0}, _} ->
            collect(Ref, K - 1, [os:perf_counter(nanosecond) - T0 | Acc]);
        {Ref, _, _, _} ->
            collect(Ref, K, Acc)
    end.

remote() ->
    case catch remote_run() of
        {ok, Med, P99} ->
            [{"remote visibility, median", io_lib:format("~.3f ms", [Med]), "loopback, peer node"},
             {"remote visibility, p99", io_lib:format("~.3f ms", [P99]), "loopback, peer node"}];
        Other ->
            [{"remote visibility, median / p99", "n/a", io_lib:format("~p", [Other])}]
    end.

remote_run() ->
    true = is_alive(),
    {ok, Peer, Node} = peer:start_link(#{name => pgbench_b, args => ["-pa" | code:get_path()]}),
    {ok, _} = pg:start(bench_r),
    {ok, _} = erpc:call(Node, pg, start, [bench_r]),
    _ = erpc:call(Node, erlang, spawn, [?MODULE, b_side, [self(), bench_r, ?LAT]]),
    BPid = receive {b_ready, P} -> P after 5000 -> error(no_b) end,
    wait_member(bench_r, ready, BPid),
    each(fun(I) ->
                 pg:join(bench_r, {lat, I, os:perf_counter(nanosecond)}, self()),
                 timer:sleep(1)
         end, lists:seq(1, ?LAT)),
    Lat = receive {lat, L} -> lists:sort(L) after 10000 -> error(no_lat) end,
    peer:stop(Peer),
    Ms = fun(Ns) -> Ns / 1.0e6 end,
    {ok, Ms(lists:nth(length(Lat) div 2 + 1, Lat)),
     Ms(lists:nth(min(length(Lat), ceil(length(Lat) * 0.99)), Lat))}.

wait_member(S, G, P) ->
    case lists:member(P, pg:get_members(S, G)) of
        true -> ok;
        false -> timer:sleep(1), wait_member(S, G, P)
    end.
