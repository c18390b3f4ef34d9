<?php
/*
 * A stand-in for the parts of WHMCS that ISPsystem's BILLmanager license module
 * ("billmanager_noc", from the repository 460s/ispsystem_whmcs_modules) uses, and a run
 * of that module's whole life against a BILLmanager API.
 *
 * The module itself is third-party code and is not part of this repository: point
 * LICENSE_FACADE_WHMCS_MODULE at its billmanager_noc.php. What WHMCS would give it is
 * written here: the WHMCS constant, curlCall() (a real HTTP POST), logModuleCall()
 * (recorded, secrets masked) and WHMCS\Database\Capsule, a query builder over
 * in-memory tables (ispsystem_noc, tblcustomfieldsvalues, tblhosting).
 *
 *   LICENSE_FACADE_WHMCS_MODULE=/path/to/billmanager_noc.php \
 *   LICENSE_FACADE_WHMCS_BILLMGR_URL=http://127.0.0.1:8089/billmgr \
 *   LICENSE_FACADE_WHMCS_BILLMGR_USER=demo LICENSE_FACADE_WHMCS_BILLMGR_PASSWORD=demo \
 *   php tests/whmcs/standin.php
 *
 * The URL, user and password may also be given as the first three arguments (the
 * environment keeps the password out of the process list). LICENSE_FACADE_WHMCS_TARIFF
 * is the product's configoption1, the BILLmanager tariff (default 55228, ISPmanager 6
 * Pro).
 *
 * The run: service 1 is created (the module orders a license and polls for its key),
 * suspended, unsuspended, given a new key, changed to another name and IP (the admin's
 * "Change params") and terminated (the module parks the license: suspended, free.lic,
 * 0.0.0.0, and its ispsystem_noc row loses the service); then service 2 is created with
 * another name and IP and must reuse the parked license instead of ordering one. Each
 * step must answer "success", leave WHMCS's tables and the license upstream as the step
 * promises, and raise no PHP error of any level (warnings, notices and deprecations
 * included). One line per step on stdout; exit status 0 when every step passed, 1
 * otherwise (the failure and the module's call log, passwords masked, on stderr).
 */

declare(strict_types=1);

namespace WHMCS\Database {
    /**
     * The Laravel query builder as WHMCS exposes it (`Capsule::table(...)`), over
     * in-memory tables with a fixed set of typed columns, so that a query naming an
     * unknown column, or a NULL or a non-number where the schema forbids it, fails as
     * it would on MySQL.
     */
    final class Capsule
    {
        /** @var array<string, array<string, array{0: string, 1: bool}>> table => column => [type, nullable] */
        private static array $schema = [];
        /** @var array<string, list<array<string, mixed>>> */
        private static array $rows = [];
        /** @var array<string, int> */
        private static array $nextId = [];

        /** Declares a table: column => [type (int, date, text), nullable]; `id` is the auto-increment key. */
        public static function create(string $table, array $columns): void
        {
            self::$schema[$table] = $columns;
            self::$rows[$table] = [];
            self::$nextId[$table] = 1;
        }

        public static function table(string $table): Query
        {
            if (!isset(self::$schema[$table])) {
                throw new \LogicException("table '$table' does not exist");
            }
            return new Query($table);
        }

        /** @return array<string, array{0: string, 1: bool}> */
        public static function columns(string $table): array
        {
            return self::$schema[$table];
        }

        /** @return list<array<string, mixed>> */
        public static function &rows(string $table): array
        {
            return self::$rows[$table];
        }

        public static function nextId(string $table): int
        {
            return self::$nextId[$table]++;
        }
    }

    /** One query: `select`, `where`, `skip`, then `first`, `get`, `insert` or `update`. */
    final class Query
    {
        /** @var list<string> */
        private array $select = [];
        /** @var list<array{0: string, 1: string, 2: mixed}> */
        private array $wheres = [];
        private int $offset = 0;

        public function __construct(private string $table)
        {
        }

        public function select(...$columns): self
        {
            foreach ($columns as $column) {
                foreach ((array)$column as $name) {
                    $this->column((string)$name);
                    $this->select[] = (string)$name;
                }
            }
            return $this;
        }

        /**
         * `where([[col, op, val], [col, val], ...])`, `where([col => val])`,
         * `where(col, val)` or `where(col, op, val)`. As in Laravel, a NULL value
         * with `=` means IS NULL, with `!=` / `<>` IS NOT NULL.
         */
        public function where($column, $operator = null, $value = null): self
        {
            if (is_array($column)) {
                foreach ($column as $key => $condition) {
                    if (is_int($key) && is_array($condition)) {
                        $this->where(...array_values($condition));
                    } else {
                        $this->where($key, '=', $condition);
                    }
                }
                return $this;
            }
            if (func_num_args() === 2) {
                [$operator, $value] = ['=', $operator];
            }
            if (!in_array($operator, ['=', '!=', '<>', '<', '<=', '>', '>='], true)) {
                throw new \LogicException("unsupported operator " . var_export($operator, true));
            }
            $this->column((string)$column);
            $this->wheres[] = [(string)$column, $operator, $value === null ? null : self::scalar($value)];
            return $this;
        }

        public function skip(int $offset): self
        {
            $this->offset = $offset;
            return $this;
        }

        public function first(): ?object
        {
            $rows = array_slice($this->matching(), $this->offset, 1);
            return $rows ? $this->project($rows[0]) : null;
        }

        public function get(): Collection
        {
            $rows = array_slice($this->matching(), $this->offset);
            return new Collection(array_map(fn (array $row) => $this->project($row), $rows));
        }

        /** Inserts one row (column => value) or a list of rows. */
        public function insert(array $values): bool
        {
            $list = array_is_list($values) ? $values : [$values];
            $table = &Capsule::rows($this->table);
            foreach ($list as $values) {
                $row = [];
                foreach (Capsule::columns($this->table) as $name => $_) {
                    $row[$name] = null;
                }
                $row['id'] = Capsule::nextId($this->table);
                foreach ($values as $name => $value) {
                    $row[(string)$name] = $this->typed((string)$name, $value);
                }
                $this->checkNotNull($row);
                $table[] = $row;
            }
            return true;
        }

        /** Inserts one row and returns its id. */
        public function insertGetId(array $values): int
        {
            $this->insert($values);
            $rows = Capsule::rows($this->table);
            return (int)end($rows)['id'];
        }

        /** Updates the matching rows; returns how many. */
        public function update(array $values): int
        {
            $table = &Capsule::rows($this->table);
            $count = 0;
            foreach ($table as &$row) {
                if ($this->matches($row)) {
                    foreach ($values as $name => $value) {
                        $row[(string)$name] = $this->typed((string)$name, $value);
                    }
                    $this->checkNotNull($row);
                    $count++;
                }
            }
            unset($row);
            return $count;
        }

        private function column(string $name): void
        {
            if (!array_key_exists($name, Capsule::columns($this->table))) {
                throw new \LogicException("unknown column '$name' in table '{$this->table}'");
            }
        }

        /** What a database makes of a bound value: Stringable objects (SimpleXML) become text. */
        private static function scalar($value)
        {
            if ($value instanceof \Stringable) {
                return (string)$value;
            }
            if ($value !== null && !is_scalar($value)) {
                throw new \LogicException("cannot bind a value of type " . get_debug_type($value));
            }
            return $value;
        }

        private function typed(string $name, $value)
        {
            $this->column($name);
            $value = self::scalar($value);
            if ($value === null) {
                return null;
            }
            [$type] = Capsule::columns($this->table)[$name];
            $text = is_bool($value) ? (string)(int)$value : (string)$value;
            switch ($type) {
                case 'int':
                    if (preg_match('/^-?\d+$/', $text) !== 1) {
                        throw new \LogicException("'$text' is not an integer ({$this->table}.$name)");
                    }
                    return (int)$text;
                case 'date':
                    if (preg_match('/^\d{4}-\d{2}-\d{2}$/', $text) !== 1) {
                        throw new \LogicException("'$text' is not a date ({$this->table}.$name)");
                    }
                    return $text;
                default:
                    return $text;
            }
        }

        private function checkNotNull(array $row): void
        {
            foreach (Capsule::columns($this->table) as $name => [$_, $nullable]) {
                if (!$nullable && $row[$name] === null) {
                    throw new \LogicException("column '$name' of '{$this->table}' cannot be NULL");
                }
            }
        }

        /** @return list<array<string, mixed>> */
        private function matching(): array
        {
            return array_values(array_filter(Capsule::rows($this->table), fn (array $row) => $this->matches($row)));
        }

        private function matches(array $row): bool
        {
            foreach ($this->wheres as [$column, $operator, $value]) {
                $cell = $row[$column];
                if ($value === null) {
                    $ok = match ($operator) {
                        '=' => $cell === null,
                        '!=', '<>' => $cell !== null,
                        default => false,
                    };
                } elseif ($cell === null) {
                    $ok = false; // SQL: a comparison with NULL is never true
                } else {
                    $ok = self::compare($cell, $operator, $value);
                }
                if (!$ok) {
                    return false;
                }
            }
            return true;
        }

        /** Numbers compare as numbers (as MySQL compares '55228' with 55228), the rest as text. */
        private static function compare($cell, string $operator, $value): bool
        {
            if (is_numeric($cell) && is_numeric($value)) {
                $order = (float)$cell <=> (float)$value;
            } else {
                $order = strcmp((string)$cell, (string)$value) <=> 0;
            }
            return match ($operator) {
                '=' => $order === 0,
                '!=', '<>' => $order !== 0,
                '<' => $order < 0,
                '<=' => $order <= 0,
                '>' => $order > 0,
                '>=' => $order >= 0,
            };
        }

        private function project(array $row): object
        {
            $names = $this->select ?: array_keys($row);
            $out = new \stdClass();
            foreach ($names as $name) {
                $out->$name = $row[$name];
            }
            return $out;
        }
    }

    /** What `get()` returns: like Laravel's collection, an object (so always truthy) to iterate and count. */
    final class Collection implements \IteratorAggregate, \Countable
    {
        /** @param list<object> $items */
        public function __construct(private array $items)
        {
        }

        public function getIterator(): \ArrayIterator
        {
            return new \ArrayIterator($this->items);
        }

        public function count(): int
        {
            return count($this->items);
        }
    }
}

namespace {
    use WHMCS\Database\Capsule;

    /** Every PHP error raised during the run, whoever caught the exception it became. */
    $GLOBALS['standin_errors'] = [];
    /** The module's logModuleCall() records, secrets masked. */
    $GLOBALS['standin_log'] = [];
    /** HTTP calls made, to stop a module that polls forever. */
    $GLOBALS['standin_calls'] = 0;
    /** Passwords to mask wherever something is printed. */
    $GLOBALS['standin_secrets'] = [];

    const STANDIN_MAX_CALLS = 2000;

    error_reporting(E_ALL);
    set_error_handler(static function (int $level, string $message, string $file, int $line): bool {
        $GLOBALS['standin_errors'][] = "PHP error $level: $message at $file:$line";
        throw new ErrorException($message, 0, $level, $file, $line);
    });

    define('WHMCS', true);

    /** WHMCS's HTTP helper: POSTs `$postfields` (form-encoded) and returns the body, or "CURL Error: …". */
    function curlCall($url, $postfields, $options = [], $throwOnCurlError = false)
    {
        if (++$GLOBALS['standin_calls'] > STANDIN_MAX_CALLS) {
            throw new RuntimeException('more than ' . STANDIN_MAX_CALLS . ' HTTP calls: the module is looping');
        }
        $ch = curl_init();
        curl_setopt($ch, CURLOPT_URL, (string)$url);
        curl_setopt($ch, CURLOPT_POST, true);
        curl_setopt($ch, CURLOPT_POSTFIELDS, is_array($postfields) ? http_build_query($postfields) : (string)$postfields);
        curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
        curl_setopt($ch, CURLOPT_CONNECTTIMEOUT, 10);
        curl_setopt($ch, CURLOPT_TIMEOUT, 100);
        foreach ($options as $name => $value) {
            curl_setopt($ch, is_string($name) ? constant($name) : $name, $value);
        }
        $body = curl_exec($ch);
        if ($body === false) {
            $error = 'CURL Error: ' . curl_errno($ch) . ' - ' . curl_error($ch);
            curl_close($ch);
            if ($throwOnCurlError) {
                throw new RuntimeException($error);
            }
            return $error;
        }
        curl_close($ch);
        return $body;
    }

    /** Masks every secret in `$text`. */
    function standin_mask(string $text, array $secrets): string
    {
        foreach (array_merge($secrets, $GLOBALS['standin_secrets']) as $secret) {
            $secret = (string)$secret;
            if ($secret !== '') {
                $text = str_replace($secret, '********', $text);
            }
        }
        return $text;
    }

    function standin_text($value): string
    {
        if ($value instanceof SimpleXMLElement) {
            return (string)$value->asXML();
        }
        if (is_array($value) || is_object($value)) {
            return print_r($value, true);
        }
        return (string)$value;
    }

    /** WHMCS's module log: recorded in memory with the `$replaceVars` (and every known password) masked. */
    function logModuleCall($module, $action, $requestString, $responseData, $processedData = '', $replaceVars = [])
    {
        $secrets = is_array($replaceVars) ? $replaceVars : [];
        $GLOBALS['standin_log'][] = [
            'module' => (string)$module,
            'action' => (string)$action,
            'request' => standin_mask(standin_text($requestString), $secrets),
            'response' => standin_mask(standin_text($responseData), $secrets),
        ];
    }

    final class StepFailed extends RuntimeException
    {
    }

    /** The WHMCS side of the run: the tables, the services and the calls into the module. */
    final class Whmcs
    {
        /** Custom fields of the product, in WHMCS's order: the module writes the key into the third. */
        private const FIELDS = [21 => 'ip', 22 => 'name', 23 => 'License key'];
        private const SERVER_ID = 1;
        private const PRODUCT_ID = 7;

        public function __construct(
            private string $url,
            private string $user,
            private string $password,
            private string $tariff,
        ) {
            Capsule::create('ispsystem_noc', [
                'id' => ['int', false],
                'licenseid' => ['int', false],
                'licensetype' => ['int', false],
                'serviceid' => ['int', true],
                'serverid' => ['int', false],
                'duedate' => ['date', false],
                'servicepackage' => ['int', true],
                'serviceaddon' => ['int', true],
            ]);
            Capsule::create('tblcustomfieldsvalues', [
                'id' => ['int', false],
                'fieldid' => ['int', false],
                'relid' => ['int', false],
                'value' => ['text', false],
            ]);
            Capsule::create('tblhosting', [
                'id' => ['int', false],
                'userid' => ['int', false],
                'packageid' => ['int', false],
                'server' => ['int', false],
                'domain' => ['text', false],
                'domainstatus' => ['text', false],
                'nextduedate' => ['date', true],
                'nextinvoicedate' => ['date', true],
            ]);
        }

        /** A new service of the product (tblhosting and its custom field values); returns its id. */
        public function newService(string $ip, string $name): int
        {
            $id = Capsule::table('tblhosting')->insertGetId([
                'userid' => 1,
                'packageid' => self::PRODUCT_ID,
                'server' => self::SERVER_ID,
                'domain' => $name,
                'domainstatus' => 'Pending',
            ]);
            $values = ['ip' => $ip, 'name' => $name, 'License key' => ''];
            foreach (self::FIELDS as $fieldId => $field) {
                Capsule::table('tblcustomfieldsvalues')->insert(['fieldid' => $fieldId, 'relid' => $id, 'value' => $values[$field]]);
            }
            return $id;
        }

        /** Sets a custom field of a service, as an admin editing the service does. */
        public function setField(int $service, string $field, string $value): void
        {
            $fieldId = array_search($field, self::FIELDS, true);
            Capsule::table('tblcustomfieldsvalues')->where([['fieldid', '=', $fieldId], ['relid', '=', $service]])->update(['value' => $value]);
        }

        public function field(int $service, string $field): string
        {
            $fieldId = array_search($field, self::FIELDS, true);
            $row = Capsule::table('tblcustomfieldsvalues')->where([['fieldid', '=', $fieldId], ['relid', '=', $service]])->first();
            return $row === null ? '' : (string)$row->value;
        }

        /** The `$params` WHMCS hands a server module for `$service`. */
        public function params(int $service): array
        {
            $customFields = [];
            foreach (self::FIELDS as $field) {
                $customFields[$field] = $this->field($service, $field);
            }
            $hosting = Capsule::table('tblhosting')->where('id', $service)->first();
            $params = [
                'accountid' => $service,
                'serviceid' => $service,
                'userid' => 1,
                'domain' => $hosting->domain,
                'username' => '',
                'password' => '',
                'packageid' => self::PRODUCT_ID,
                'pid' => self::PRODUCT_ID,
                'serverid' => self::SERVER_ID,
                'server' => true,
                'serverip' => '',
                'serverhostname' => $this->url,
                'serverusername' => $this->user,
                'serverpassword' => $this->password,
                'serveraccesshash' => '',
                'serversecure' => false,
                'moduletype' => 'billmanager_noc',
                'producttype' => 'other',
                'status' => $hosting->domainstatus,
                'customfields' => $customFields,
                'configoptions' => [],
                'clientsdetails' => ['userid' => 1, 'id' => 1, 'email' => 'client@example.invalid'],
            ];
            for ($n = 1; $n <= 24; $n++) {
                $params["configoption$n"] = '';
            }
            $params['configoption1'] = $this->tariff;
            return $params;
        }

        /** Calls the module's `billmanager_noc_<function>` for `$service`; it must answer "success". */
        public function call(string $function, int $service): void
        {
            $before = count($GLOBALS['standin_errors']);
            $answer = ('billmanager_noc_' . $function)($this->params($service));
            if (count($GLOBALS['standin_errors']) > $before) {
                throw new StepFailed($GLOBALS['standin_errors'][$before]);
            }
            if ($answer !== 'success') {
                throw new StepFailed('the module answered ' . var_export($answer, true));
            }
        }

        /** The ispsystem_noc rows: the module's own record of its licenses. */
        public function licenses(): array
        {
            $rows = [];
            foreach (Capsule::table('ispsystem_noc')->get() as $row) {
                $rows[] = $row;
            }
            return $rows;
        }

        /** The license's `soft.edit` form upstream, read as the module reads it. */
        public function upstream(int $license): SimpleXMLElement
        {
            $body = curlCall($this->url, [
                'out' => 'xml',
                'func' => 'soft.edit',
                'authinfo' => $this->user . ':' . $this->password,
                'elid' => (string)$license,
            ]);
            $doc = new SimpleXMLElement($body);
            if ($doc->error->count() > 0) {
                throw new StepFailed("soft.edit of $license: " . $doc->error['type'] . ':' . $doc->error->msg);
            }
            return $doc;
        }
    }

    function check(bool $holds, string $what): void
    {
        if (!$holds) {
            throw new StepFailed($what);
        }
    }

    /** The one ispsystem_noc row, which every step of this run keeps single. */
    function only_license(Whmcs $whmcs): object
    {
        $rows = $whmcs->licenses();
        check(count($rows) === 1, 'ispsystem_noc holds ' . count($rows) . ' licenses, expected 1: ' . print_r($rows, true));
        return $rows[0];
    }

    /** The service's key field holds the license's key upstream, and it is not empty. */
    function check_key(Whmcs $whmcs, int $service, SimpleXMLElement $upstream): string
    {
        $key = $whmcs->field($service, 'License key');
        check($key !== '', "service $service has no key in its custom field");
        check($key === (string)$upstream->lickey, "service $service keeps key '$key', the license upstream has '{$upstream->lickey}'");
        return $key;
    }

    function check_upstream(SimpleXMLElement $upstream, string $ip, string $name): void
    {
        check((string)$upstream->ip === $ip, "the license upstream is on '{$upstream->ip}', expected '$ip'");
        check((string)$upstream->licname === $name, "the license upstream is named '{$upstream->licname}', expected '$name'");
    }

    function standin_run(Whmcs $whmcs): void
    {
        $step = static function (string $label, callable $body): void {
            $GLOBALS['standin_step'] = $label;
            $detail = $body();
            echo "$label: success" . ($detail === null ? '' : " ($detail)") . "\n";
        };
        $first = $whmcs->newService('192.0.2.10', 'whmcs-first');
        $licenseId = 0;
        $key = '';

        $step("CreateAccount service $first", function () use ($whmcs, $first, &$licenseId, &$key) {
            $whmcs->call('CreateAccount', $first);
            $row = only_license($whmcs);
            check((int)$row->serviceid === $first, "ispsystem_noc does not bind the license to service $first");
            $licenseId = (int)$row->licenseid;
            $upstream = $whmcs->upstream($licenseId);
            check_upstream($upstream, '192.0.2.10', 'whmcs-first');
            $key = check_key($whmcs, $first, $upstream);
            return "license $licenseId ordered, key stored, paid until {$row->duedate}";
        });
        $step("SuspendAccount service $first", function () use ($whmcs, $first, $licenseId) {
            $whmcs->call('SuspendAccount', $first);
            check($whmcs->field($first, 'License key') === '', 'the key field was not cleared');
            check((string)$whmcs->upstream($licenseId)->status === '3', 'the license is not suspended upstream');
            return null;
        });
        $step("UnSuspendAccount service $first", function () use ($whmcs, $first, $licenseId, $key) {
            $whmcs->call('UnSuspendAccount', $first);
            $upstream = $whmcs->upstream($licenseId);
            check((string)$upstream->status === '2', 'the license is not active upstream');
            check(check_key($whmcs, $first, $upstream) === $key, 'the key changed on resuming');
            return null;
        });
        $step("Newkey service $first", function () use ($whmcs, $first, $licenseId, &$key) {
            $whmcs->call('Newkey', $first);
            $newKey = check_key($whmcs, $first, $whmcs->upstream($licenseId));
            check($newKey !== $key, 'the key field still holds the old key');
            $key = $newKey;
            return 'the new key from /doc/lickey stored';
        });
        $step("Update service $first", function () use ($whmcs, $first, $licenseId) {
            $whmcs->setField($first, 'ip', '192.0.2.11');
            $whmcs->setField($first, 'name', 'whmcs-first-moved');
            $whmcs->call('Update', $first);
            check_upstream($whmcs->upstream($licenseId), '192.0.2.11', 'whmcs-first-moved');
            return 'renamed and moved to 192.0.2.11';
        });
        $step("TerminateAccount service $first", function () use ($whmcs, $first, $licenseId) {
            $whmcs->call('TerminateAccount', $first);
            $row = only_license($whmcs);
            check($row->serviceid === null, 'ispsystem_noc still binds the license to a service');
            $upstream = $whmcs->upstream($licenseId);
            check_upstream($upstream, '0.0.0.0', 'free.lic');
            check((string)$upstream->status === '3', 'the parked license is not suspended upstream');
            return "license $licenseId parked as free.lic on 0.0.0.0";
        });

        $second = $whmcs->newService('192.0.2.20', 'whmcs-second');
        $step("CreateAccount service $second", function () use ($whmcs, $second, $licenseId) {
            $whmcs->call('CreateAccount', $second);
            $row = only_license($whmcs);
            check((int)$row->licenseid === $licenseId, "service $second got license {$row->licenseid}, not the parked $licenseId");
            check((int)$row->serviceid === $second, "ispsystem_noc does not bind the license to service $second");
            $upstream = $whmcs->upstream($licenseId);
            check_upstream($upstream, '192.0.2.20', 'whmcs-second');
            check((string)$upstream->status === '2', 'the reused license is not active upstream');
            check_key($whmcs, $second, $upstream);
            return "reused the parked license $licenseId, no order";
        });
    }

    function standin_main(array $argv): int
    {
        $env = static fn (string $name): string => (string)(getenv($name) ?: '');
        $module = $env('LICENSE_FACADE_WHMCS_MODULE');
        $url = $argv[1] ?? $env('LICENSE_FACADE_WHMCS_BILLMGR_URL');
        $user = $argv[2] ?? $env('LICENSE_FACADE_WHMCS_BILLMGR_USER');
        $password = $argv[3] ?? $env('LICENSE_FACADE_WHMCS_BILLMGR_PASSWORD');
        $tariff = $env('LICENSE_FACADE_WHMCS_TARIFF') ?: '55228';
        if ($module === '' || !is_file($module)) {
            fwrite(STDERR, "LICENSE_FACADE_WHMCS_MODULE must name the module's billmanager_noc.php\n");
            return 2;
        }
        if ($url === '' || $user === '' || $password === '') {
            fwrite(STDERR, "the BILLmanager URL, user and password are needed (arguments or LICENSE_FACADE_WHMCS_BILLMGR_*)\n");
            return 2;
        }
        $GLOBALS['standin_secrets'] = [$password];
        $GLOBALS['standin_step'] = 'loading the module';
        try {
            ob_start();
            require $module;
            $printed = (string)ob_get_clean();
            check(trim($printed) === '', 'the module printed while loading: ' . $printed);
            standin_run(new Whmcs($url, $user, $password, $tariff));
            check($GLOBALS['standin_errors'] === [], 'PHP errors: ' . implode('; ', $GLOBALS['standin_errors']));
        } catch (Throwable $e) {
            while (ob_get_level() > 0) {
                ob_end_clean();
            }
            $why = $e instanceof StepFailed ? $e->getMessage() : get_class($e) . ': ' . $e->getMessage() . ' at ' . $e->getFile() . ':' . $e->getLine();
            fwrite(STDERR, standin_mask("FAILED at {$GLOBALS['standin_step']}: $why\n", []));
            fwrite(STDERR, "the module's calls, oldest first:\n");
            foreach ($GLOBALS['standin_log'] as $n => $entry) {
                fwrite(STDERR, "#$n {$entry['module']} {$entry['action']}\n  request: {$entry['request']}\n  response: " . trim($entry['response']) . "\n");
            }
            return 1;
        }
        echo "all steps passed\n";
        return 0;
    }

    exit(standin_main($argv));
}
