/* SPDX-License-Identifier: MIT */
/*
 * test_dump.c - tests of profiler/dump.c: task snapshots on SIGUSR1, on
 * demand (co_dump_tasks, co_dump_on_signal) and from the watchdog, and
 * the dump that follows the runtime's deadlock message.
 *
 * The signal cases are what an operator does: the suite forks and execs
 * test/helpers/dump_helper.c (a real process running co_run with parked
 * tasks), waits for its "ready" line, sends SIGUSR1 with kill(2), waits
 * for the announcement on its stderr, and then reads the dump directory
 * as a person or `go tool pprof` would.
 *
 * Scenario groups:
 *   1. SIGUSR1            the directory holds exactly
 *                         copper-<pid>-<time>.goroutine.pb.gz and .txt (no
 *                         temporary file left), announced on stderr; the
 *                         .txt is a debug=2 dump naming the helper's
 *                         functions; the .pb.gz decodes (protobuf-c) and
 *                         `go tool pprof -raw` reads it; the process keeps
 *                         running, answers a second SIGUSR1 with a second
 *                         pair, and exits normally when its stdin closes.
 *   2. Environment        COPPER_SIGDUMP=0: Copper leaves SIGUSR1 alone and
 *                         its default action kills the helper;
 *                         COPPER_SIGDUMP=2 and COPPER_DUMP_DIR="" make
 *                         co_run fail with -EINVAL and a message naming the
 *                         variable, without running main_fn; otherwise
 *                         SIGUSR1 is handled from main_fn's first line.
 *   3. Unwritable dir     stderr says the snapshot cannot be written, no
 *                         partial file is left, the process keeps running
 *                         (a mode-0500 directory; as root, which ignores
 *                         modes, a path under /dev/null).
 *   4. On demand          co_dump_tasks writes the pair and returns the .txt
 *                         path; COPPER_DUMP_DIR is the default directory;
 *                         -ERANGE for a short buffer (even one byte short),
 *                         writing nothing; an error and no file for a bad
 *                         directory.  co_dump_on_signal with another signal;
 *                         -EINVAL for SIGKILL and 0.
 *   5. Watchdog           crossing the threshold writes one pair, staying
 *                         above writes no more, dropping below and crossing
 *                         again writes another; 0 turns it off.
 *   6. Deadlock           a process whose tasks all block exits with status
 *                         2, "fatal error: all goroutines are asleep -
 *                         deadlock!" and a debug=2 block for every task.
 *   7. Names              a dump never replaces a file: in a millisecond
 *                         whose names are taken (a pair, a lone .pb.gz, a
 *                         lone .txt) it takes the first free -<n> pair,
 *                         leaving the old files as they were, and -ERANGE
 *                         for a buffer too short for that name writes
 *                         nothing; four workers dumping at once into one
 *                         directory get a whole pair each.
 *   8. Signal on workers  co_dump_on_signal(SIGUSR2) from a task on a worker
 *                         other than worker 0 (2 and 4 workers, with
 *                         COPPER_SIGDUMP unset and 0) leaves SIGUSR2 blocked
 *                         on every worker, worker 0 included; kill(2) from a
 *                         plain thread while tasks run on every worker gives
 *                         one pair per signal, no task caught in the
 *                         handler, and the tasks go on; worker 0's mask is
 *                         restored after co_run.  The same call while worker
 *                         0 is inside another signal handler still blocks
 *                         SIGUSR2 there once that handler returns.
 */
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "profile_test.h"

#include "runtime/testing.h"

#define HELPER_VAR "COPPER_TEST_DUMP_HELPER"

/* ------------------------------------------------------------------------
 * A helper process with pipes on stdin, stdout and stderr
 * ---------------------------------------------------------------------- */

struct hp {
	pid_t pid;
	int in;                  /* its stdin (write end), -1 once closed */
	int out, err;            /* its stdout and stderr (read ends) */
	char obuf[1 << 16];      /* what it printed so far */
	char ebuf[1 << 16];
	size_t olen, elen;
	bool oopen, eopen;
	int status;              /* waitpid status, once reaped */
	bool reaped;
};

/* One helper at a time; static, so that a failed assertion leaks nothing. */
static struct hp hp_storage;
static struct tu_proc proc_storage;

static void hp_start(struct hp *p, const char *mode, const char *const env[])
{
	int in[2], out[2], err[2];
	const char *path = tu_helper(HELPER_VAR);

	memset(p, 0, sizeof(*p));
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	fflush(NULL);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		sigset_t none;
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		/* A clean signal state, whatever this test process did. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGUSR1, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		unsetenv("COPPER_SIGDUMP");
		unsetenv("COPPER_DUMP_DIR");
		for (size_t i = 0; env && env[i]; i++) {
			const char *eq = strchr(env[i], '=');
			char name[128];
			if (!eq) {
				unsetenv(env[i]);
				continue;
			}
			if ((size_t)(eq - env[i]) >= sizeof(name))
				_exit(126);
			memcpy(name, env[i], (size_t)(eq - env[i]));
			name[eq - env[i]] = '\0';
			setenv(name, eq + 1, 1);
		}
		execl(path, path, mode, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
	p->oopen = p->eopen = true;
}

static void hp_drain(int fd, char *buf, size_t *len, size_t cap, bool *open)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		*open = false;
		return;
	}
	size_t take = (size_t)n < cap - 1 - *len ? (size_t)n : cap - 1 - *len;
	memcpy(buf + *len, tmp, take);
	*len += take;
	buf[*len] = '\0';
}

/* Reads what the helper printed for up to timeout_ms. */
static void hp_pump(struct hp *p, int timeout_ms)
{
	struct pollfd fds[2] = {
		{.fd = p->oopen ? p->out : -1, .events = POLLIN},
		{.fd = p->eopen ? p->err : -1, .events = POLLIN},
	};

	if (!p->oopen && !p->eopen) {
		poll(NULL, 0, timeout_ms);
		return;
	}
	if (poll(fds, 2, timeout_ms) <= 0)
		return;
	if (fds[0].revents)
		hp_drain(p->out, p->obuf, &p->olen, sizeof(p->obuf), &p->oopen);
	if (fds[1].revents)
		hp_drain(p->err, p->ebuf, &p->elen, sizeof(p->ebuf), &p->eopen);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the helper's stdout (or stderr) holds `count` occurrences
 * of needle; false after timeout_ms. */
static bool hp_wait_for(struct hp *p, bool on_stderr, const char *needle,
			int count, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	for (;;) {
		const char *s = on_stderr ? p->ebuf : p->obuf;
		int n = 0;
		for (const char *q = strstr(s, needle); q; q = strstr(q + 1, needle))
			n++;
		if (n >= count)
			return true;
		if (now_ms() >= end || (on_stderr ? !p->eopen : !p->oopen))
			return false;
		hp_pump(p, 20);
	}
}

static void hp_send(struct hp *p, const char *line)
{
	assert_int_equal(write(p->in, line, strlen(line)), (ssize_t)strlen(line));
}

static void hp_close_stdin(struct hp *p)
{
	if (p->in >= 0)
		close(p->in);
	p->in = -1;
}

/* Waits for the helper to exit (reading its output meanwhile); kills it
 * and returns false after timeout_ms. */
static bool hp_wait_exit(struct hp *p, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	while (!p->reaped) {
		pid_t r = waitpid(p->pid, &p->status, WNOHANG);
		if (r == p->pid) {
			p->reaped = true;
			break;
		}
		if (now_ms() >= end) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &p->status, 0);
			p->reaped = true;
			return false;
		}
		hp_pump(p, 10);
	}
	while (p->oopen || p->eopen)
		hp_pump(p, 100);
	return true;
}

static void hp_end(struct hp *p)
{
	hp_close_stdin(p);
	if (!p->reaped)
		hp_wait_exit(p, 10000);
	close(p->out);
	close(p->err);
}

/* "exited 1", "killed by signal 11 (Segmentation fault)". */
static const char *status_text(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "status %#x", status);
	return buf;
}

/* "running", or how it ended. */
static const char *hp_state(struct hp *p, char *buf, size_t len)
{
	if (!p->reaped && waitpid(p->pid, &p->status, WNOHANG) == p->pid)
		p->reaped = true;
	if (!p->reaped)
		snprintf(buf, len, "running");
	else
		status_text(p->status, buf, len);
	return buf;
}

#define HP_EXPECT(p, on_stderr, needle, count, ms)                         \
	do {                                                               \
		char st_[128];                                             \
		if (!hp_wait_for((p), (on_stderr), (needle), (count), (ms))) \
			fail_msg("helper (%s) did not print \"%s\" (x%d) on " \
				 "%s within %d ms\nstdout:\n%s\nstderr:\n%s", \
				 hp_state((p), st_, sizeof(st_)), (needle), \
				 (count), (on_stderr) ? "stderr" : "stdout", \
				 (ms), (p)->obuf, (p)->ebuf);              \
	} while (0)

/* ------------------------------------------------------------------------
 * Dump directories
 * ---------------------------------------------------------------------- */

static void temp_dir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/test_dump_XXXXXX");
	assert_non_null(mkdtemp(buf));
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Entries of dir but . and .. when suffix is NULL; else the names that do
 * not start with '.' (no temporary file) and end with suffix.  Safe on a
 * task's stack. */
static size_t dir_count_matching(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0, slen = suffix ? strlen(suffix) : 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (!suffix)
			n += strcmp(e->d_name, ".") != 0 &&
			     strcmp(e->d_name, "..") != 0;
		else
			n += e->d_name[0] != '.' && len > slen &&
			     strcmp(e->d_name + len - slen, suffix) == 0;
	}
	closedir(d);
	return n;
}

static size_t dir_count(const char *dir)
{
	return dir_count_matching(dir, NULL);
}

/* Every entry of dir but . and .., sorted; returns how many. */
static size_t dir_list(const char *dir, char names[][256], size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n < max)
			snprintf(names[n], 256, "%s", e->d_name);
		n++;
	}
	closedir(d);
	qsort(names, n < max ? n : max, 256, cmp_name);
	return n;
}

/* Removes every entry of dir, however many, then dir (made writable
 * first: a test may have taken that away). */
static void dir_remove(const char *dir)
{
	DIR *d;
	struct dirent *e;
	char path[512];

	chmod(dir, 0700);
	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

/*
 * Checks that names[0..n) are pairs copper-<pid>-<stamp>.goroutine.pb.gz
 * and .goroutine.txt (nothing else, no temporary file), and copies the
 * stamps of the pairs to stamps (sorted).  Returns the number of pairs.
 */
static size_t check_pairs(const char *dir, pid_t pid, char stamps[][128])
{
	char names[64][256], re_src[256];
	size_t n = dir_list(dir, names, 64), pairs = 0;
	regex_t re;
	regmatch_t m[3];

	snprintf(re_src, sizeof(re_src),
		 "^copper-%d-([0-9][0-9A-Za-z.:_+-]*)\\.goroutine\\.(pb\\.gz|txt)$",
		 (int)pid);
	pt_regex(&re, re_src);
	if (n % 2 != 0 || n > 64)
		goto bad;
	for (size_t i = 0; i < n; i += 2) {
		char *s0, *s1, *k0, *k1;
		/* Sorted: <stamp>.goroutine.pb.gz before <stamp>.goroutine.txt. */
		if (regexec(&re, names[i], 3, m, 0) != 0)
			goto bad;
		s0 = pt_group(names[i], m, 1);
		k0 = pt_group(names[i], m, 2);
		if (regexec(&re, names[i + 1], 3, m, 0) != 0) {
			free(s0);
			free(k0);
			goto bad;
		}
		s1 = pt_group(names[i + 1], m, 1);
		k1 = pt_group(names[i + 1], m, 2);
		bool ok = strcmp(s0, s1) == 0 && strcmp(k0, "pb.gz") == 0 &&
			  strcmp(k1, "txt") == 0;
		snprintf(stamps[pairs++], 128, "%s", s0);
		free(s0);
		free(s1);
		free(k0);
		free(k1);
		if (!ok)
			goto bad;
	}
	regfree(&re);
	return pairs;
bad:
	regfree(&re);
	{
		char all[4096] = "";
		for (size_t i = 0; i < n && i < 64; i++) {
			strncat(all, "\n  ", sizeof(all) - strlen(all) - 1);
			strncat(all, names[i], sizeof(all) - strlen(all) - 1);
		}
		fail_msg("%s does not hold copper-%d-<time>.goroutine.{pb.gz,txt} "
			 "pairs only:%s", dir, (int)pid, all);
	}
	return 0;
}

static void read_pair(const char *dir, pid_t pid, const char *stamp,
		      struct pt_buf *txt, struct pt_buf *pb)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/copper-%d-%s.goroutine.txt", dir,
		 (int)pid, stamp);
	assert_int_equal(pt_read_file(path, txt), 0);
	snprintf(path, sizeof(path), "%s/copper-%d-%s.goroutine.pb.gz", dir,
		 (int)pid, stamp);
	assert_int_equal(pt_read_file(path, pb), 0);
}

/* ------------------------------------------------------------------------
 * 1. SIGUSR1 on a real process
 * ---------------------------------------------------------------------- */

/* Whether process pid catches signal sig (SigCgt in /proc/<pid>/status),
 * which is how an operator can tell that kill -USR1 will be answered. */
static bool sig_caught(pid_t pid, int sig)
{
	char path[64];
	unsigned long long mask = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	return tu_status_sigmask(path, "SigCgt", &mask) &&
	       tu_sigmask_has(mask, sig);
}

/*
 * Starts the park helper dumping into dir and waits until it is ready
 * and catches SIGUSR1.  (The second wait should be redundant once main_fn
 * runs; group 2 checks that separately, so that a late handler fails
 * there and not as a killed helper here.)
 */
static void start_park(struct hp *p, const char *dir)
{
	char env_dir[600];
	const char *env[] = {env_dir, NULL};
	int64_t end;

	snprintf(env_dir, sizeof(env_dir), "COPPER_DUMP_DIR=%s", dir);
	hp_start(p, "park", env);
	HP_EXPECT(p, false, "ready\n", 1, 10000);
	end = now_ms() + 5000;
	while (!sig_caught(p->pid, SIGUSR1)) {
		if (now_ms() >= end)
			fail_msg("the helper does not catch SIGUSR1");
		poll(NULL, 0, 5);
	}
}

static void test_dump_sigusr1_writes_pair_and_keeps_running(void **state)
{
	char dir[64], stamps[32][128], path[512];
	struct hp *p = &hp_storage;

	(void)state;
	temp_dir(dir, sizeof(dir));
	start_park(p, dir);
	assert_int_equal(kill(p->pid, SIGUSR1), 0);
	HP_EXPECT(p, true, ".goroutine.txt", 1, 10000);
	assert_int_equal(check_pairs(dir, p->pid, stamps), 1);
	/* The announcement names the .txt file. */
	snprintf(path, sizeof(path), "%s/copper-%d-%s.goroutine.txt", dir,
		 (int)p->pid, stamps[0]);
	assert_non_null(strstr(p->ebuf, path));
	assert_non_null(strstr(p->ebuf, "copper: "));

	/* Still running: it answers, and a second signal gives a second pair. */
	hp_send(p, "ping\n");
	HP_EXPECT(p, false, "pong\n", 1, 10000);
	poll(NULL, 0, 5); /* a different millisecond for the second stamp */
	assert_int_equal(kill(p->pid, SIGUSR1), 0);
	HP_EXPECT(p, true, ".goroutine.txt", 2, 10000);
	assert_int_equal(check_pairs(dir, p->pid, stamps), 2);
	assert_string_not_equal(stamps[0], stamps[1]);

	/* And it ends normally. */
	hp_close_stdin(p);
	if (!hp_wait_exit(p, 10000))
		fail_msg("the helper did not exit after its stdin closed\n%s",
			 p->ebuf);
	assert_true(WIFEXITED(p->status));
	assert_int_equal(WEXITSTATUS(p->status), 0);
	assert_non_null(strstr(p->obuf, "bye\n"));
	hp_end(p);
	dir_remove(dir);
}

static void test_dump_sigusr1_txt_is_debug2(void **state)
{
	char dir[64], stamps[4][128];
	struct pt_buf txt, pb;
	struct pt_d2 d;
	struct hp *p = &hp_storage;
	int recv = 0, named = 0, sleeping = 0, main_seen = 0;

	(void)state;
	temp_dir(dir, sizeof(dir));
	start_park(p, dir);
	assert_int_equal(kill(p->pid, SIGUSR1), 0);
	HP_EXPECT(p, true, ".goroutine.txt", 1, 10000);
	assert_int_equal(check_pairs(dir, p->pid, stamps), 1);
	read_pair(dir, p->pid, stamps[0], &txt, &pb);
	hp_end(p);
	if (!pt_parse_debug2(txt.data, txt.len, &d))
		fail_msg("the .txt is not a debug=2 dump: %s\n%s", d.err, txt.data);
	/* Task 1, three receivers, the named one, the sleeper. */
	assert_int_equal(d.n, 6);
	for (size_t i = 0; i < d.n; i++) {
		const struct pt_d2_block *b = &d.b[i];
		assert_true(b->created == (b->id != 1));
		if (pt_d2_frame_index(b, "task_helper_recv") == 1) {
			assert_string_equal(b->bracket, "chan receive");
			assert_string_equal(b->frames[0].func, "co_chan_recv");
			assert_string_equal(b->created_func, "task_main_park");
			recv++;
		} else if (pt_d2_frame_index(b, "task_helper_named") >= 0) {
			assert_string_equal(b->bracket,
					    "chan receive labels:{\"copper.name\": "
					    "\"helper-named\"}");
			named++;
		} else if (pt_d2_frame_index(b, "task_helper_sleep") == 1) {
			assert_string_equal(b->bracket, "sleep");
			assert_string_equal(b->frames[0].func, "co_sleep");
			sleeping++;
		} else if (b->id == 1) {
			/* Reading stdin through co_blocking. */
			assert_string_equal(b->bracket, "syscall");
			assert_true(pt_d2_frame_index(b, "task_main_park") >= 0);
			assert_true(pt_d2_frame_index(b, "co_blocking") >= 0);
			main_seen++;
		} else {
			fail_msg("unexpected block \"%s\"\n%s", b->header, txt.data);
		}
	}
	assert_int_equal(recv, 3);
	assert_int_equal(named, 1);
	assert_int_equal(sleeping, 1);
	assert_int_equal(main_seen, 1);
	pt_d2_free(&d);
	pt_buf_free(&txt);
	pt_buf_free(&pb);
	dir_remove(dir);
}

static void test_dump_sigusr1_pb_gz_decodes(void **state)
{
	char dir[64], stamps[4][128], err[256], cmd[600];
	struct pt_buf txt, pb, out;
	struct hp *p = &hp_storage;
	int64_t total = 0, recv = 0;

	(void)state;
	temp_dir(dir, sizeof(dir));
	start_park(p, dir);
	assert_int_equal(kill(p->pid, SIGUSR1), 0);
	HP_EXPECT(p, true, ".goroutine.txt", 1, 10000);
	assert_int_equal(check_pairs(dir, p->pid, stamps), 1);
	read_pair(dir, p->pid, stamps[0], &txt, &pb);
	hp_end(p);

	pt_pb_profile *prof = pt_decode(pb.data, pb.len, err, sizeof(err));
	if (!prof)
		fail_msg("the .pb.gz does not decode: %s", err);
	assert_string_equal(pt_pb_str(prof, prof->sample_type[0]->type),
			    "goroutine");
	for (size_t i = 0; i < prof->n_sample; i++) {
		total += prof->sample[i]->value[0];
		if (pt_pb_sample_has_function(prof, prof->sample[i],
					      "task_helper_recv"))
			recv += prof->sample[i]->value[0];
	}
	assert_int_equal(total, 6);
	assert_int_equal(recv, 3);
	pt_pb_free(prof);

	if (pt_have("go")) {
		snprintf(cmd, sizeof(cmd),
			 "go tool pprof -raw %s/copper-%d-%s.goroutine.pb.gz", dir,
			 (int)p->pid, stamps[0]);
		int st = pt_shell(cmd, &out);
		if (st != 0)
			fail_msg("%s: %d\n%s", cmd, st, out.data);
		assert_non_null(strstr(out.data, "PeriodType: goroutine count"));
		assert_non_null(strstr(out.data, " task_helper_recv "));
		assert_non_null(strstr(out.data, " task_helper_named "));
		assert_non_null(strstr(out.data, "\n          3: "));
		pt_buf_free(&out);
	} else {
		printf("# go is not on PATH: skipping go tool pprof -raw\n");
	}
	pt_buf_free(&txt);
	pt_buf_free(&pb);
	dir_remove(dir);
}

/* ------------------------------------------------------------------------
 * 2. Environment
 * ---------------------------------------------------------------------- */

static void test_dump_sigdump_0_leaves_sigusr1_alone(void **state)
{
	char dir[64], env_dir[600], names[4][256];
	const char *env[] = {"COPPER_SIGDUMP=0", env_dir, NULL};
	struct hp *p = &hp_storage;

	(void)state;
	temp_dir(dir, sizeof(dir));
	snprintf(env_dir, sizeof(env_dir), "COPPER_DUMP_DIR=%s", dir);
	hp_start(p, "park", env);
	HP_EXPECT(p, false, "ready\n", 1, 10000);
	assert_int_equal(kill(p->pid, SIGUSR1), 0);
	if (!hp_wait_exit(p, 10000))
		fail_msg("SIGUSR1 did not end the helper\n%s", p->ebuf);
	/* The default action: terminated by the signal, nothing written. */
	assert_true(WIFSIGNALED(p->status));
	assert_int_equal(WTERMSIG(p->status), SIGUSR1);
	assert_int_equal(dir_list(dir, names, 4), 0);
	assert_null(strstr(p->ebuf, ".goroutine"));
	hp_end(p);
	dir_remove(dir);
}

#define EARLY_RUNS 40

/*
 * Runs the early helper EARLY_RUNS times with env: co_run must refuse to
 * start, with a message naming var, before main_fn runs at all.  (Many
 * runs, because whether main_fn gets to run first is a race.)
 */
static void expect_env_rejected(const char *const env[], const char *var)
{
	char *const argv[] = {(char *)tu_helper(HELPER_VAR), "early", NULL};
	struct tu_proc *p = &proc_storage;
	int ran = 0;

	for (int i = 0; i < EARLY_RUNS; i++) {
		tu_proc_run(argv, env, p);
		char st[128];
		if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 1)
			fail_msg("run %d: the helper %s, want exit 1\nstdout:\n"
				 "%s\nstderr:\n%s", i,
				 status_text(p->status, st, sizeof(st)), p->out,
				 p->err);
		if (!strstr(p->out, "co_run=-22\n"))
			fail_msg("run %d: co_run did not return -EINVAL:\n%s", i,
				 p->out);
		if (!strstr(p->err, var))
			fail_msg("the message does not name %s: \"%s\"", var,
				 p->err);
		ran += strstr(p->out, "sigusr1=") != NULL;
	}
	if (ran)
		fail_msg("main_fn ran in %d of %d runs although co_run returned "
			 "-EINVAL", ran, EARLY_RUNS);
}

static void test_dump_sigdump_bad_value_einval(void **state)
{
	const char *env[] = {"COPPER_SIGDUMP=2", NULL};
	(void)state;
	expect_env_rejected(env, "COPPER_SIGDUMP");
}

static void test_dump_dump_dir_empty_einval(void **state)
{
	const char *env[] = {"COPPER_SIGDUMP", "COPPER_DUMP_DIR=", NULL};
	(void)state;
	expect_env_rejected(env, "COPPER_DUMP_DIR");
}

/* A process that is running its main_fn answers SIGUSR1: the handler is
 * in place before main_fn starts. */
static void test_dump_sigusr1_handled_before_main_runs(void **state)
{
	char *const argv[] = {(char *)tu_helper(HELPER_VAR), "early", NULL};
	const char *const env[] = {"COPPER_SIGDUMP", "COPPER_DUMP_DIR", NULL};
	struct tu_proc *p = &proc_storage;
	int early = 0;

	(void)state;
	for (int i = 0; i < EARLY_RUNS; i++) {
		char st[128];
		tu_proc_run(argv, env, p);
		if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0)
			fail_msg("run %d: the helper %s\n%s", i,
				 status_text(p->status, st, sizeof(st)), p->err);
		if (strcmp(p->out, "sigusr1=handled\n") != 0)
			early++;
	}
	if (early)
		fail_msg("main_fn ran before SIGUSR1 was handled in %d of %d runs",
			 early, EARLY_RUNS);
}

/* ------------------------------------------------------------------------
 * 3. Unwritable directory
 * ---------------------------------------------------------------------- */

static void test_dump_unwritable_dir_reports_and_keeps_running(void **state)
{
	char dir[64], bad[128], names[8][256];
	struct hp *p = &hp_storage;
	bool root = geteuid() == 0;

	(void)state;
	temp_dir(dir, sizeof(dir));
	if (root) {
		/* Root writes into a mode-0500 directory anyway. */
		printf("# running as root: using a path under /dev/null\n");
		snprintf(bad, sizeof(bad), "/dev/null/copper-dumps");
	} else {
		assert_int_equal(chmod(dir, 0500), 0);
		snprintf(bad, sizeof(bad), "%s", dir);
	}
	start_park(p, bad);
	assert_int_equal(kill(p->pid, SIGUSR1), 0);
	HP_EXPECT(p, true, "cannot write", 1, 10000);
	/* The message names the directory. */
	assert_non_null(strstr(p->ebuf, bad));
	assert_null(strstr(p->ebuf, "wrote"));
	assert_int_equal(dir_list(dir, names, 8), 0); /* no partial file */
	hp_send(p, "ping\n");
	HP_EXPECT(p, false, "pong\n", 1, 10000);
	hp_close_stdin(p);
	assert_true(hp_wait_exit(p, 10000));
	assert_true(WIFEXITED(p->status));
	assert_int_equal(WEXITSTATUS(p->status), 0);
	hp_end(p);
	dir_remove(dir);
}

/* ------------------------------------------------------------------------
 * 4. On demand: co_dump_tasks, co_dump_on_signal
 * ---------------------------------------------------------------------- */

static co_chan *od_chan;
static char od_dir[64], od_env_dir[64];
static struct {
	int err, err_env, err_short, err_bad;
	char path[512], path_env[512];
	int sig_kill, sig_zero, sig_usr2;
} od;

static void task_dump_parked(void *arg)
{
	(void)arg;
	co_chan_recv(od_chan, NULL);
	co_yield();
}

static void task_main_dump_tasks(void *arg)
{
	char small[8];
	(void)arg;

	od_chan = co_chan_new(sizeof(int), 0);
	for (int i = 0; i < 2; i++)
		CHECK(co_go(task_dump_parked, NULL) != 0);
	od.err = co_dump_tasks(od_dir, od.path, sizeof(od.path));
	od.err_env = co_dump_tasks(NULL, od.path_env, sizeof(od.path_env));
	od.err_short = co_dump_tasks(od_dir, small, sizeof(small));
	od.err_bad = co_dump_tasks("/dev/null/copper-dumps", NULL, 0);
	CHECK_EQ(co_chan_close(od_chan), 0);
	CHECK(tu_wait_num_tasks(1, 5 * TU_SEC));
	co_chan_free(od_chan);
}

static void test_dump_tasks_returns_txt_path(void **state)
{
	char prefix[128], stamps[8][128];
	struct pt_buf txt;
	struct pt_d2 d;
	size_t len;

	(void)state;
	temp_dir(od_dir, sizeof(od_dir));
	temp_dir(od_env_dir, sizeof(od_env_dir));
	tu_setenv("COPPER_DUMP_DIR", od_env_dir);
	tu_run(task_main_dump_tasks, NULL);
	tu_setenv("COPPER_DUMP_DIR", NULL);

	assert_int_equal(od.err, 0);
	snprintf(prefix, sizeof(prefix), "%s/copper-%d-", od_dir, (int)getpid());
	assert_memory_equal(od.path, prefix, strlen(prefix));
	len = strlen(od.path);
	assert_true(len > 14);
	assert_string_equal(od.path + len - 14, ".goroutine.txt");
	assert_int_equal(pt_read_file(od.path, &txt), 0);
	if (!pt_parse_debug2(txt.data, txt.len, &d))
		fail_msg("%s\n%s", d.err, txt.data);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.b[0].bracket, "running");
	assert_true(pt_d2_frame_index(&d.b[0], "task_main_dump_tasks") >= 0);
	pt_d2_free(&d);
	pt_buf_free(&txt);
	/* One pair there (the -ERANGE call wrote nothing), one in the
	 * default directory. */
	assert_int_equal(od.err_short, -ERANGE);
	assert_int_equal(check_pairs(od_dir, getpid(), stamps), 1);
	assert_int_equal(od.err_env, 0);
	snprintf(prefix, sizeof(prefix), "%s/copper-", od_env_dir);
	assert_memory_equal(od.path_env, prefix, strlen(prefix));
	assert_int_equal(check_pairs(od_env_dir, getpid(), stamps), 1);
	assert_true(od.err_bad < 0);
	dir_remove(od_dir);
	dir_remove(od_env_dir);
}

static void task_main_dump_on_signal(void *arg)
{
	(void)arg;
	od.sig_kill = co_dump_on_signal(SIGKILL, od_dir);
	od.sig_zero = co_dump_on_signal(0, od_dir);
	od.sig_usr2 = co_dump_on_signal(SIGUSR2, od_dir);
	if (od.sig_usr2 == 0) {
		CHECK_EQ(kill(getpid(), SIGUSR2), 0);
		CHECK(TU_WAIT_UNTIL(dir_count(od_dir) >= 2, 10 * TU_SEC));
	}
}

static void test_dump_on_signal_other_signal(void **state)
{
	char stamps[4][128], err[4096];
	struct tu_capture cap;

	(void)state;
	temp_dir(od_dir, sizeof(od_dir));
	tu_capture_begin(&cap);
	tu_run(task_main_dump_on_signal, NULL);
	tu_capture_end(&cap, err, sizeof(err));
	assert_int_equal(od.sig_kill, -EINVAL);
	assert_int_equal(od.sig_zero, -EINVAL);
	assert_int_equal(od.sig_usr2, 0);
	assert_int_equal(check_pairs(od_dir, getpid(), stamps), 1);
	assert_non_null(strstr(err, od_dir));
	dir_remove(od_dir);
}

/*
 * A buffer one byte short of the .txt path: -ERANGE and nothing written,
 * not even a temporary file; one byte more, and the dump is written.
 * (Names have a fixed length: the time is always to the millisecond.)
 */
static struct {
	char dir[64];
	size_t need;             /* strlen of the .txt path, with its NUL */
	int err_short, err_exact;
	size_t files_after_short;
	char path[512];
} sb;

static void task_main_short_buffer(void *arg)
{
	char buf[512];
	(void)arg;

	sb.err_short = co_dump_tasks(sb.dir, buf, sb.need - 1);
	sb.files_after_short = dir_count(sb.dir);
	sb.err_exact = co_dump_tasks(sb.dir, sb.path, sb.need);
}

static void test_dump_tasks_short_buffer_writes_nothing(void **state)
{
	char stamps[4][128], name[128];

	(void)state;
	temp_dir(sb.dir, sizeof(sb.dir));
	snprintf(name, sizeof(name),
		 "/copper-%d-20260101T000000.000Z.goroutine.txt",
		 (int)getpid());
	sb.need = strlen(sb.dir) + strlen(name) + 1;
	tu_run(task_main_short_buffer, NULL);
	assert_int_equal(sb.err_short, -ERANGE);
	assert_int_equal(sb.files_after_short, 0);
	assert_int_equal(sb.err_exact, 0);
	assert_int_equal(strlen(sb.path) + 1, sb.need);
	assert_int_equal(check_pairs(sb.dir, getpid(), stamps), 1);
	dir_remove(sb.dir);
}

/* ------------------------------------------------------------------------
 * 5. Watchdog
 * ---------------------------------------------------------------------- */

#define WD_MAX 20

static co_chan *wd_chan;
static char wd_dir[64];
static struct {
	int arm, disarm;
	size_t after_first, after_staying, after_second, after_off;
} wd;

static void task_watched(void *arg)
{
	(void)arg;
	co_chan_recv(wd_chan, NULL);
	co_yield();
}

static size_t wd_files(void)
{
	return dir_count(wd_dir);
}

/* Parks n more tasks on a fresh channel if wd_chan is NULL. */
static void wd_spawn(int n)
{
	if (!wd_chan)
		wd_chan = co_chan_new(sizeof(int), 0);
	for (int i = 0; i < n; i++)
		CHECK(co_go(task_watched, NULL) != 0);
}

static void wd_release(void)
{
	CHECK_EQ(co_chan_close(wd_chan), 0);
	CHECK(tu_wait_num_tasks(1, 10 * TU_SEC));
	co_chan_free(wd_chan);
	wd_chan = NULL;
}

static void task_main_watchdog(void *arg)
{
	(void)arg;
	wd.arm = co_watchdog(WD_MAX, wd_dir);
	wd_spawn(WD_MAX + 4);                 /* 25 > 20: a crossing */
	CHECK(TU_WAIT_UNTIL(wd_files() >= 2, 10 * TU_SEC));
	co_sleep(100 * TU_MS);
	wd.after_first = wd_files();
	wd_spawn(10);                         /* still above */
	co_sleep(300 * TU_MS);
	wd.after_staying = wd_files();
	wd_release();                         /* below again */
	co_sleep(200 * TU_MS);
	wd_spawn(WD_MAX + 4);                 /* a second crossing */
	CHECK(TU_WAIT_UNTIL(wd_files() >= 4, 10 * TU_SEC));
	co_sleep(300 * TU_MS);
	wd.after_second = wd_files();
	wd_release();
	wd.disarm = co_watchdog(0, NULL);
	co_sleep(100 * TU_MS);
	wd_spawn(WD_MAX + 4);                 /* off: no dump */
	co_sleep(300 * TU_MS);
	wd.after_off = wd_files();
	wd_release();
}

static void test_dump_watchdog_once_per_crossing(void **state)
{
	char stamps[8][128], err[8192];
	struct tu_capture cap;
	int announced = 0;

	(void)state;
	temp_dir(wd_dir, sizeof(wd_dir));
	tu_capture_begin(&cap);
	tu_run(task_main_watchdog, NULL);
	tu_capture_end(&cap, err, sizeof(err));
	assert_int_equal(wd.arm, 0);
	assert_int_equal(wd.disarm, 0);
	assert_int_equal(wd.after_first, 2);
	assert_int_equal(wd.after_staying, 2);
	assert_int_equal(wd.after_second, 4);
	assert_int_equal(wd.after_off, 4);
	assert_int_equal(check_pairs(wd_dir, getpid(), stamps), 2);
	for (const char *q = strstr(err, wd_dir); q; q = strstr(q + 1, wd_dir))
		announced++;
	if (announced != 2)
		fail_msg("want 2 announcements naming %s, got %d:\n%s", wd_dir,
			 announced, err);
	dir_remove(wd_dir);
}

/* ------------------------------------------------------------------------
 * 6. Deadlock
 * ---------------------------------------------------------------------- */

static void test_dump_deadlock_exit_2_with_dump(void **state)
{
	static const char msg[] =
		"fatal error: all goroutines are asleep - deadlock!\n\n";
	char *const argv[] = {(char *)tu_helper(HELPER_VAR), "deadlock", NULL};
	const char *const env[] = {"COPPER_SIGDUMP", "COPPER_DUMP_DIR", NULL};
	struct tu_proc *p = &proc_storage;
	struct pt_d2 d;
	int deadlocked = 0;

	(void)state;
	tu_proc_run(argv, env, p);
	assert_true(WIFEXITED(p->status));
	assert_int_equal(WEXITSTATUS(p->status), 2);
	assert_null(strstr(p->out, "deadlock not detected"));
	if (strncmp(p->err, msg, strlen(msg)) != 0)
		fail_msg("stderr does not start with Go's message:\n%s", p->err);
	/* The dump; Go ends a crash dump with an empty line. */
	char *dump = p->err + strlen(msg);
	size_t len = strlen(dump);
	if (len >= 2 && dump[len - 1] == '\n' && dump[len - 2] == '\n')
		dump[--len] = '\0';
	if (!pt_parse_debug2(dump, len, &d))
		fail_msg("the deadlock dump is not debug=2: %s\n%s", d.err, p->err);
	assert_int_equal(d.n, 3);
	for (size_t i = 0; i < d.n; i++) {
		const struct pt_d2_block *b = &d.b[i];
		assert_string_equal(b->bracket, "chan receive");
		if (b->id == 1) {
			assert_true(pt_d2_frame_index(b, "task_main_deadlock") >= 0);
			assert_false(b->created);
			continue;
		}
		assert_int_equal(pt_d2_frame_index(b, "task_helper_deadlocked"), 1);
		assert_string_equal(b->frames[0].func, "co_chan_recv");
		assert_string_equal(b->created_func, "task_main_deadlock");
		assert_int_equal(b->created_in, 1);
		deadlocked++;
	}
	assert_int_equal(deadlocked, 2);
	pt_d2_free(&d);
}

/* ------------------------------------------------------------------------
 * 7. Names: a dump never replaces a file
 * ---------------------------------------------------------------------- */

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "copper-<pid>-<UTC time>" for the wall-clock millisecond ms, as
 * docs/operating.md gives it. */
static void dump_base(int64_t ms, char *buf, size_t len)
{
	time_t sec = (time_t)(ms / 1000);
	char stamp[32];
	struct tm tm;

	gmtime_r(&sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
	snprintf(buf, len, "copper-%d-%s.%03dZ", (int)getpid(), stamp,
		 (int)(ms % 1000));
}

#define NT_LEAD_MS 1000     /* from now to the first taken millisecond:
			       longer than taking the window's names (800
			       files, about 0.4 s on this VM's ext4) */
#define NT_WINDOW_MS 200    /* milliseconds whose names are all taken: ten
			       times what the two dumps (four fsyncs) take */
#define NT_ATTEMPTS 4       /* each with twice the lead of the one before */

/* What a stale dump left for each millisecond: a whole pair, a lone
 * .pb.gz under -2, a lone .txt under -3.  So -4 is the first free pair,
 * and -3 makes the dump take back a .pb.gz it had already named. */
static const char *const nt_taken[] = {
	".goroutine.pb.gz", ".goroutine.txt", "-2.goroutine.pb.gz",
	"-3.goroutine.txt",
};
#define NT_TAKEN (sizeof(nt_taken) / sizeof(nt_taken[0]))

static struct {
	char dir[64];
	int64_t first;           /* the first taken millisecond */
	size_t short_len;        /* room for an unsuffixed .txt path only */
	int64_t before, after;   /* wall clock around the two dumps */
	int err_short, err;
	size_t files_after_short;
	char path[512];
} nt;

static void nt_take_names(void)
{
	char base[128], path[512];

	for (int64_t ms = nt.first; ms < nt.first + NT_WINDOW_MS; ms++) {
		dump_base(ms, base, sizeof(base));
		for (size_t k = 0; k < NT_TAKEN; k++) {
			snprintf(path, sizeof(path), "%s/%s%s", nt.dir, base,
				 nt_taken[k]);
			int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
			int fd = open(path, flags, 0644);
			assert_true(fd >= 0);
			assert_int_equal(write(fd, "stale\n", 6), 6);
			close(fd);
		}
	}
}

static void task_main_names_taken(void *arg)
{
	char buf[512];
	int64_t now;
	(void)arg;

	while ((now = real_ms()) < nt.first + 1)
		co_sleep(TU_MS);
	nt.before = now;
	nt.err_short = co_dump_tasks(nt.dir, buf, nt.short_len);
	nt.files_after_short = dir_count(nt.dir);
	nt.err = co_dump_tasks(nt.dir, nt.path, sizeof(nt.path));
	nt.after = real_ms();
}

/* Every name a stale dump left still holds what it held. */
static void nt_assert_untouched(void)
{
	char base[128], path[512];
	struct pt_buf b;

	for (int64_t ms = nt.first; ms < nt.first + NT_WINDOW_MS; ms++) {
		dump_base(ms, base, sizeof(base));
		for (size_t k = 0; k < NT_TAKEN; k++) {
			snprintf(path, sizeof(path), "%s/%s%s", nt.dir, base,
				 nt_taken[k]);
			assert_int_equal(pt_read_file(path, &b), 0);
			if (strcmp(b.data, "stale\n") != 0)
				fail_msg("%s was replaced", path);
			pt_buf_free(&b);
		}
	}
}

/*
 * co_dump_tasks in a millisecond whose names are taken (every millisecond
 * of a window around the call is, see nt_taken): -ERANGE for a buffer
 * that holds the plain name but not "-4", writing nothing; then the pair
 * <base>-4.goroutine.{pb.gz,txt}, every stale file untouched, and no
 * other new file (no temporary, no .pb.gz under -3).
 */
static void test_dump_tasks_names_taken_next_suffix(void **state)
{
	char base[128], want[512], pb[512];
	struct pt_buf txt;
	struct pt_d2 d;
	int attempt;

	(void)state;
	for (attempt = 0; attempt < NT_ATTEMPTS; attempt++) {
		temp_dir(nt.dir, sizeof(nt.dir));
		nt.first = real_ms() + ((int64_t)NT_LEAD_MS << attempt);
		nt_take_names();
		dump_base(nt.first, base, sizeof(base));
		nt.short_len = strlen(nt.dir) + 1 + strlen(base) +
			       strlen(".goroutine.txt") + 1;
		tu_run(task_main_names_taken, NULL);
		if (nt.before >= nt.first &&
		    nt.after < nt.first + NT_WINDOW_MS)
			break;
		/* The dumps ran outside the window (a slow machine). */
		printf("# attempt %d: the dumps ran %lld to %lld ms after the "
		       "first taken millisecond\n", attempt,
		       (long long)(nt.before - nt.first),
		       (long long)(nt.after - nt.first));
		dir_remove(nt.dir);
	}
	if (attempt == NT_ATTEMPTS)
		fail_msg("the dumps never ran inside the window");
	assert_int_equal(nt.err_short, -ERANGE);
	assert_int_equal(nt.files_after_short, NT_TAKEN * NT_WINDOW_MS);
	assert_int_equal(nt.err, 0);
	/* <dir>/<base of a millisecond in the window>-4.goroutine.txt */
	const char *name = nt.path + strlen(nt.dir) + 1;
	assert_true(strlen(nt.path) > strlen(nt.dir) + 1);
	assert_memory_equal(nt.path, nt.dir, strlen(nt.dir));
	assert_true(strlen(name) == strlen(base) + strlen("-4.goroutine.txt"));
	snprintf(want, sizeof(want), "%.*s-4.goroutine.txt", (int)strlen(base),
		 name);
	assert_string_equal(name, want);
	snprintf(pb, sizeof(pb), "%s/%.*s-4.goroutine.pb.gz", nt.dir,
		 (int)strlen(base), name);
	assert_int_equal(access(pb, F_OK), 0);
	assert_int_equal(dir_count(nt.dir), NT_TAKEN * NT_WINDOW_MS + 2);
	nt_assert_untouched();
	assert_int_equal(pt_read_file(nt.path, &txt), 0);
	if (!pt_parse_debug2(txt.data, txt.len, &d))
		fail_msg("%s\n%s", d.err, txt.data);
	assert_int_equal(d.n, 1);
	pt_d2_free(&d);
	pt_buf_free(&txt);
	dir_remove(nt.dir);
}

/*
 * The number of tasks in the dump whose .txt is at path, after checking
 * that the pair is whole and agrees: the .txt holds that many "goroutine
 * N [...]:" blocks and the .pb.gz beside it decodes to as many tasks.
 * (Headers only: under AddressSanitizer a task caught running inside an
 * interceptor has C++ frames that the strict debug=2 parser refuses.)
 */
static int pair_tasks(const char *path)
{
	char pb_path[512], err[256];
	struct pt_buf txt, pb;
	int blocks = 0;
	int64_t total = 0;

	assert_true(strlen(path) > 3);
	snprintf(pb_path, sizeof(pb_path), "%.*s.pb.gz",
		 (int)(strlen(path) - 4), path);
	assert_int_equal(pt_read_file(path, &txt), 0);
	for (const char *q = txt.data; q; q = strchr(q, '\n')) {
		q += *q == '\n';
		unsigned long long id;
		char c;
		blocks += sscanf(q, "goroutine %llu [%c", &id, &c) == 2;
	}
	bool handler = strstr(txt.data, "dump_signal") != NULL;
	pt_buf_free(&txt);
	if (handler)
		fail_msg("%s: a task was caught in the signal handler", path);
	assert_int_equal(pt_read_file(pb_path, &pb), 0);
	pt_pb_profile *prof = pt_decode(pb.data, pb.len, err, sizeof(err));
	pt_buf_free(&pb);
	if (!prof)
		fail_msg("%s does not decode: %s", pb_path, err);
	for (size_t i = 0; i < prof->n_sample; i++)
		total += prof->sample[i]->value[0];
	pt_pb_free(prof);
	if (total != blocks)
		fail_msg("%s holds %d tasks, the .pb.gz %lld", path, blocks,
			 (long long)total);
	return blocks;
}

#define CC_TASKS 4
#define CC_DUMPS 6

static struct {
	char dir[64];
	_Atomic int ready;
	int err[CC_TASKS][CC_DUMPS];
	char path[CC_TASKS][CC_DUMPS][512];
} cc;

static void task_cc_dumper(void *arg)
{
	int i = (int)(intptr_t)arg;

	atomic_fetch_add(&cc.ready, 1);
	CHECK(TU_WAIT_UNTIL(atomic_load(&cc.ready) == CC_TASKS, 10 * TU_SEC));
	for (int k = 0; k < CC_DUMPS; k++)
		cc.err[i][k] = co_dump_tasks(cc.dir, cc.path[i][k],
					     sizeof(cc.path[i][k]));
}

static void task_main_concurrent_dumps(void *arg)
{
	(void)arg;
	CHECK_EQ(testing_nprocs(), 4);
	for (int i = 0; i < CC_TASKS; i++)
		CHECK(co_go(task_cc_dumper, (void *)(intptr_t)i) != 0);
	CHECK(tu_wait_num_tasks(1, 60 * TU_SEC));
}

/*
 * Four tasks on four workers dump into one directory at once, many in the
 * same millisecond: every call gets its own pair (CC_TASKS * CC_DUMPS
 * pairs under distinct names, each whole, its two files agreeing).
 */
static void test_dump_tasks_concurrent_names_unique(void **state)
{
	char stamps[CC_TASKS * CC_DUMPS][128];
	int suffixed = 0;

	(void)state;
	temp_dir(cc.dir, sizeof(cc.dir));
	atomic_store(&cc.ready, 0);
	tu_setenv("COPPER_PROCS", "4");
	tu_run(task_main_concurrent_dumps, NULL);
	tu_setenv("COPPER_PROCS", NULL);
	for (int i = 0; i < CC_TASKS; i++) {
		for (int k = 0; k < CC_DUMPS; k++) {
			if (cc.err[i][k] != 0)
				fail_msg("dump %d of task %d: %s", k, i,
					 co_strerror(cc.err[i][k]));
			/* Task 1 and the dumpers not yet done. */
			int n = pair_tasks(cc.path[i][k]);
			if (n < 2 || n > CC_TASKS + 1)
				fail_msg("%s: %d tasks", cc.path[i][k], n);
			suffixed += strstr(cc.path[i][k], "Z-") != NULL;
		}
	}
	assert_int_equal(check_pairs(cc.dir, getpid(), stamps),
			 CC_TASKS * CC_DUMPS);
	printf("# %d of %d dumps shared a millisecond with another\n", suffixed,
	       CC_TASKS * CC_DUMPS);
	dir_remove(cc.dir);
}

/* ------------------------------------------------------------------------
 * 8. The dump signal is blocked on every worker
 * ---------------------------------------------------------------------- */

#define SW_CALLERS 4
#define SW_SIGNALS 3
#define SW_MAX_PROCS 8

static struct {
	char dir[64];
	int procs;
	pid_t main_tid;                 /* worker 0: the thread of co_run */
	_Atomic int claimed;            /* a caller not on worker 0 won */
	_Atomic bool called, stop, sender_done;
	int err, caller_worker;
	bool w0_blocked;                /* worker 0, right after the call */
	int workers_seen, workers_blocked;
	_Atomic pid_t tid[SW_MAX_PROCS]; /* worker id -> its thread */
	_Atomic long rounds;            /* work done by the busy tasks */
	long rounds_at_end_of_signals, rounds_later;
	int sent, dumped;
} sw;

/* Whether thread tid of this process blocks sig (SigBlk in /proc). */
static bool thread_blocks(pid_t tid, int sig)
{
	char path[64];
	unsigned long long mask = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	return tu_status_sigmask(path, "SigBlk", &mask) &&
	       tu_sigmask_has(mask, sig);
}

/* .goroutine.txt files in dir: whole dumps (the .txt is named last). */
static int txt_count(const char *dir)
{
	return (int)dir_count_matching(dir, ".goroutine.txt");
}

/* Moves the dump to SIGUSR2 from the first task that finds itself on a
 * worker other than worker 0. */
static void task_sw_caller(void *arg)
{
	(void)arg;
	int64_t end = co_now() + 10 * TU_SEC;

	while (!atomic_load(&sw.called) && co_now() < end) {
		int w = testing_worker_id();
		if (w > 0 && atomic_exchange(&sw.claimed, 1) == 0) {
			sw.caller_worker = w;
			sw.err = co_dump_on_signal(SIGUSR2, sw.dir);
			atomic_store(&sw.called, true);
			return;
		}
		co_yield();
	}
}

/* Runs (never parks) until told to stop, noting which thread runs each
 * worker.  It yields only after a millisecond without a switch: two busy
 * tasks that yield to each other at once keep their worker switching, and
 * an idle worker steals a task only from a worker that has not switched
 * for a while (sched.c, steal_runnext), so they would share one worker. */
static void task_sw_busy(void *arg)
{
	(void)arg;
	while (!atomic_load(&sw.stop)) {
		int w = testing_worker_id();
		int64_t until = co_now() + TU_MS;
		if (w >= 0 && w < SW_MAX_PROCS)
			atomic_store(&sw.tid[w], gettid());
		while (co_now() < until && !atomic_load(&sw.stop))
			;
		atomic_fetch_add(&sw.rounds, 1);
		co_yield();
	}
}

/* A plain thread, not a worker, that sends SIGUSR2 to the process (as
 * kill -USR2 would) and waits for each dump. */
static void *sw_sender(void *arg)
{
	sigset_t one;
	(void)arg;

	sigemptyset(&one);
	sigaddset(&one, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &one, NULL);
	for (int i = 0; i < SW_SIGNALS; i++) {
		int64_t end = now_ms() + 10000;
		if (kill(getpid(), SIGUSR2) != 0)
			break;
		sw.sent++;
		while (txt_count(sw.dir) < i + 1 && now_ms() < end)
			poll(NULL, 0, 2);
		if ((sw.dumped = txt_count(sw.dir)) < i + 1)
			break;
	}
	atomic_store(&sw.sender_done, true);
	return NULL;
}

static void task_main_signal_workers(void *arg)
{
	pthread_t sender;
	(void)arg;

	CHECK_EQ(testing_nprocs(), sw.procs);
	for (int i = 0; i < SW_CALLERS; i++)
		CHECK(co_go(task_sw_caller, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&sw.called), 20 * TU_SEC));
	sw.w0_blocked = thread_blocks(sw.main_tid, SIGUSR2);
	CHECK(tu_wait_num_tasks(1, 10 * TU_SEC));

	/* Every worker busy, then the signals. */
	for (int i = 0; i < sw.procs; i++)
		CHECK(co_go(task_sw_busy, NULL) != 0);
	(void)TU_WAIT_UNTIL(atomic_load(&sw.rounds) > 20 * sw.procs,
			    5 * TU_SEC);
	CHECK_EQ(pthread_create(&sender, NULL, sw_sender, NULL), 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&sw.sender_done), 60 * TU_SEC));
	pthread_join(sender, NULL);

	/* Still running: the busy tasks go on. */
	sw.rounds_at_end_of_signals = atomic_load(&sw.rounds);
	(void)TU_WAIT_UNTIL(atomic_load(&sw.rounds) >
			    sw.rounds_at_end_of_signals + 10, 5 * TU_SEC);
	sw.rounds_later = atomic_load(&sw.rounds);
	for (int w = 0; w < sw.procs; w++) {
		/* Every worker is a thread of the runtime's; co_run's
		 * caller waits (sw.w0_blocked above is its mask). */
		pid_t tid = atomic_load(&sw.tid[w]);
		if (tid)
			CHECK(tid != sw.main_tid);
		if (!tid)
			continue;
		sw.workers_seen++;
		sw.workers_blocked += thread_blocks(tid, SIGUSR2);
	}
	atomic_store(&sw.stop, true);
	CHECK(tu_wait_num_tasks(1, 10 * TU_SEC));
}

/*
 * co_dump_on_signal(SIGUSR2) from a task on a worker other than worker 0,
 * with procs workers (COPPER_SIGDUMP as sigdump, NULL: unset): every
 * worker, worker 0 included, blocks SIGUSR2 from then on, so only the
 * dump thread takes it.  kill(2) from a plain thread while tasks run on
 * every worker gives one pair per signal, none showing a task inside the
 * signal handler, and the tasks keep running.  After co_run, worker 0
 * (this thread) has its old mask back.
 */
static void run_signal_workers(int procs, const char *sigdump)
{
	char stamps[SW_SIGNALS][128], err[16384], n[8], path[512];
	struct tu_capture cap;
	sigset_t before, after;
	int announced = 0;

	memset(&sw, 0, sizeof(sw));
	sw.procs = procs;
	sw.main_tid = gettid();
	temp_dir(sw.dir, sizeof(sw.dir));
	snprintf(n, sizeof(n), "%d", procs);
	tu_setenv("COPPER_PROCS", n);
	tu_setenv("COPPER_SIGDUMP", sigdump);
	pthread_sigmask(SIG_BLOCK, NULL, &before);
	tu_capture_begin(&cap);
	tu_run(task_main_signal_workers, NULL);
	tu_capture_end(&cap, err, sizeof(err));
	pthread_sigmask(SIG_BLOCK, NULL, &after);
	tu_setenv("COPPER_PROCS", NULL);
	tu_setenv("COPPER_SIGDUMP", NULL);

	assert_int_equal(sw.err, 0);
	assert_true(sw.caller_worker > 0);
	if (!sw.w0_blocked)
		fail_msg("co_dump_on_signal(SIGUSR2) on worker %d left SIGUSR2 "
			 "unblocked on worker 0", sw.caller_worker);
	assert_true(sw.workers_seen >= 2);
	assert_int_equal(sw.workers_blocked, sw.workers_seen);
	assert_int_equal(sw.sent, SW_SIGNALS);
	assert_int_equal(sw.dumped, SW_SIGNALS);
	assert_true(sw.rounds_later > sw.rounds_at_end_of_signals);
	assert_int_equal(check_pairs(sw.dir, getpid(), stamps), SW_SIGNALS);
	for (int i = 0; i < SW_SIGNALS; i++) {
		snprintf(path, sizeof(path), "%s/copper-%d-%s.goroutine.txt",
			 sw.dir, (int)getpid(), stamps[i]);
		assert_int_equal(pair_tasks(path), 1 + procs);
	}
	for (const char *q = strstr(err, "copper: signal: wrote"); q;
	     q = strstr(q + 1, "copper: signal: wrote"))
		announced++;
	if (announced != SW_SIGNALS)
		fail_msg("want %d announcements, got %d:\n%s", SW_SIGNALS,
			 announced, err);
	/* Worker 0's mask is its own again. */
	assert_false(sigismember(&after, SIGUSR2));
	for (int s = 1; s < NSIG; s++)
		assert_int_equal(sigismember(&after, s),
				 sigismember(&before, s));
	dir_remove(sw.dir);
}

static void test_dump_on_signal_other_worker_blocks_on_all(void **state)
{
	(void)state;
	run_signal_workers(2, NULL);
}

static void test_dump_on_signal_other_worker_sigdump_0(void **state)
{
	(void)state;
	run_signal_workers(4, "0");
}

#define NK_HANDLER_MS 100

static struct {
	char dir[64];
	pthread_t worker0;              /* this thread, worker 0 in co_run */
	pid_t main_tid;
	_Atomic int in_handler;         /* 1 inside, 2 once it returned */
	_Atomic bool calling;           /* the caller is about to call */
	_Atomic int claimed;
	_Atomic bool called;
	int err, caller_worker;
	int64_t call_ms;                /* how long co_dump_on_signal took */
	bool inside_at_call;            /* the handler ran when it was called */
	bool w0_blocked;
} nk;

/* Keeps worker 0 inside a handler (SIGWINCH blocked meanwhile), as a
 * program's own handler or the runtime's SIGURG one can: until
 * NK_HANDLER_MS after the caller said it calls co_dump_on_signal, so the
 * call surely starts while worker 0 is inside, however late the caller
 * gets its CPU (and at most 10 s, should the caller never come). */
static void nk_winch(int sig)
{
	int64_t give_up = now_ms() + 10000, end = INT64_MAX, now;
	(void)sig;
	atomic_store(&nk.in_handler, 1);
	while ((now = now_ms()) < end && now < give_up)
		if (end == INT64_MAX && atomic_load(&nk.calling))
			end = now + NK_HANDLER_MS;
	atomic_store(&nk.in_handler, 2);
}

static void task_nk_caller(void *arg)
{
	(void)arg;
	int64_t end = co_now() + 10 * TU_SEC;

	while (!atomic_load(&nk.called) && co_now() < end) {
		int w = testing_worker_id();
		if (w > 0 && atomic_exchange(&nk.claimed, 1) == 0) {
			int64_t t0;
			nk.caller_worker = w;
			CHECK_EQ(pthread_kill(nk.worker0, SIGWINCH), 0);
			t0 = now_ms() + 10000;
			while (atomic_load(&nk.in_handler) == 0 &&
			       now_ms() < t0)
				;
			t0 = now_ms();
			nk.inside_at_call = atomic_load(&nk.in_handler) == 1;
			atomic_store(&nk.calling, true);
			nk.err = co_dump_on_signal(SIGUSR2, nk.dir);
			nk.call_ms = now_ms() - t0;
			atomic_store(&nk.called, true);
			return;
		}
		co_yield();
	}
}

static void task_main_kick_nested(void *arg)
{
	(void)arg;
	for (int i = 0; i < SW_CALLERS; i++)
		CHECK(co_go(task_nk_caller, NULL) != 0);
	CHECK(TU_WAIT_UNTIL(atomic_load(&nk.called), 20 * TU_SEC));
	CHECK(TU_WAIT_UNTIL(atomic_load(&nk.in_handler) == 2, 5 * TU_SEC));
	nk.w0_blocked = thread_blocks(nk.main_tid, SIGUSR2);
	CHECK(tu_wait_num_tasks(1, 10 * TU_SEC));
}

/*
 * co_dump_on_signal(SIGUSR2) from worker 1 while worker 0 is inside a
 * signal handler of the program's: the kick lands in that handler, where
 * blocking SIGUSR2 would be undone when the outer handler returns, so the
 * call waits for the handler to end and worker 0 blocks SIGUSR2 after it.
 */
static void test_dump_on_signal_kick_nested_in_handler(void **state)
{
	struct sigaction sa, old;
	struct tu_capture cap;
	char err[4096];

	(void)state;
	memset(&nk, 0, sizeof(nk));
	temp_dir(nk.dir, sizeof(nk.dir));
	nk.worker0 = pthread_self();
	nk.main_tid = gettid();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = nk_winch;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGWINCH, &sa, &old), 0);
	tu_setenv("COPPER_PROCS", "2");
	tu_capture_begin(&cap);
	tu_run(task_main_kick_nested, NULL);
	tu_capture_end(&cap, err, sizeof(err));
	tu_setenv("COPPER_PROCS", NULL);
	assert_int_equal(sigaction(SIGWINCH, &old, NULL), 0);
	assert_int_equal(nk.err, 0);
	assert_true(nk.caller_worker > 0);
	assert_true(nk.inside_at_call);
	if (!nk.w0_blocked)
		fail_msg("a kick inside another handler left SIGUSR2 unblocked "
			 "on worker 0 (co_dump_on_signal took %lld ms)",
			 (long long)nk.call_ms);
	dir_remove(nk.dir);
}

#define T(f) cmocka_unit_test(f)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_dump_sigusr1_writes_pair_and_keeps_running),
		T(test_dump_sigusr1_txt_is_debug2),
		T(test_dump_sigusr1_pb_gz_decodes),
		T(test_dump_sigdump_0_leaves_sigusr1_alone),
		T(test_dump_sigdump_bad_value_einval),
		T(test_dump_dump_dir_empty_einval),
		T(test_dump_sigusr1_handled_before_main_runs),
		T(test_dump_unwritable_dir_reports_and_keeps_running),
		T(test_dump_tasks_returns_txt_path),
		T(test_dump_on_signal_other_signal),
		T(test_dump_tasks_short_buffer_writes_nothing),
		T(test_dump_watchdog_once_per_crossing),
		T(test_dump_deadlock_exit_2_with_dump),
		T(test_dump_tasks_names_taken_next_suffix),
		T(test_dump_tasks_concurrent_names_unique),
		T(test_dump_on_signal_other_worker_blocks_on_all),
		T(test_dump_on_signal_other_worker_sigdump_0),
		T(test_dump_on_signal_kick_nested_in_handler),
	};

	/* COPPER_TEST_FILTER=test_dump_watchdog* runs some of the cases. */
	if (getenv("COPPER_TEST_FILTER"))
		cmocka_set_test_filter(getenv("COPPER_TEST_FILTER"));
	return cmocka_run_group_tests_name("profiler.dump", tests, NULL, NULL);
}
