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
 *                         -ERANGE for a short buffer; an error and no file
 *                         for a bad directory.  co_dump_on_signal with
 *                         another signal; -EINVAL for SIGKILL and 0.
 *   5. Watchdog           crossing the threshold writes one pair, staying
 *                         above writes no more, dropping below and crossing
 *                         again writes another; 0 turns it off.
 *   6. Deadlock           a process whose tasks all block exits with status
 *                         2, "fatal error: all goroutines are asleep -
 *                         deadlock!" and a debug=2 block for every task.
 */
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

/* Entries of dir but . and .. (safe on a task's stack). */
static size_t dir_count(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
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

static void dir_remove(const char *dir)
{
	char names[64][256], path[512];
	size_t n = dir_list(dir, names, 64);

	chmod(dir, 0700);
	for (size_t i = 0; i < n && i < 64; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
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
	char path[64], line[256];
	unsigned long long mask = 0;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigCgt: %llx", &mask) == 1)
			found = true;
	fclose(f);
	return found && (mask >> (sig - 1) & 1);
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
	/* Names carry the time to the millisecond: a pause between dumps
	 * into one directory keeps them apart. */
	od.err = co_dump_tasks(od_dir, od.path, sizeof(od.path));
	od.err_env = co_dump_tasks(NULL, od.path_env, sizeof(od.path_env));
	co_sleep(2 * TU_MS);
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
	/* Two pairs there (the -ERANGE call wrote too), one in the default. */
	assert_int_equal(od.err_short, -ERANGE);
	assert_int_equal(check_pairs(od_dir, getpid(), stamps), 2);
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
		T(test_dump_watchdog_once_per_crossing),
		T(test_dump_deadlock_exit_2_with_dump),
	};

	/* COPPER_TEST_FILTER=test_dump_watchdog* runs some of the cases. */
	if (getenv("COPPER_TEST_FILTER"))
		cmocka_set_test_filter(getenv("COPPER_TEST_FILTER"));
	return cmocka_run_group_tests_name("profiler.dump", tests, NULL, NULL);
}
