// The JDBC agent of test_pg.py: PostgreSQL's own JDBC driver (Debian's libpostgresql-jdbc-java),
// run inside the test cgroup with `java -cp /usr/share/java/postgresql.jar PgJdbcAgent.java URL`.
//
// pgjdbc does not use libpq: it speaks the extended protocol for everything, turns a statement it
// has run prepareThreshold times into a named server-side statement, sends batches as several
// Bind/Execute pairs before one Sync, and fetches some types in binary. With prepareThreshold=1
// in the URL all of that happens at once. It prints one JSON object on stdout:
//   rows       a prepared SELECT run with three parameters, as "name:qty" strings
//   inserted   ids an INSERT ... RETURNING gave in a transaction, committed
//   batch      update counts of a three-statement batch
//   denied     the SQLState and message of a statement a rule denies
//   after      SELECT 1 on the same connection after the denial
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

public class PgJdbcAgent {
    static String q(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\')
                b.append('\\').append(c);
            else if (c < 0x20)
                b.append(String.format("\\u%04x", (int) c));
            else
                b.append(c);
        }
        return b.append('"').toString();
    }

    static String list(List<String> v) {
        return "[" + String.join(",", v) + "]";
    }

    public static void main(String[] args) throws Exception {
        List<String> rows = new ArrayList<>(), inserted = new ArrayList<>(), batch = new ArrayList<>();
        String deniedState = "", deniedMsg = "";
        int after;

        try (Connection c = DriverManager.getConnection(args[0])) {
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT name, qty FROM items WHERE qty >= ? AND name LIKE ? ORDER BY id")) {
                for (int min : new int[] { 9, 4, 0 }) {
                    ps.setInt(1, min);
                    ps.setString(2, "g%");
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next())
                            rows.add(q(rs.getString(1) + ":" + rs.getInt(2)));
                    }
                }
            }
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement(
                    "INSERT INTO items(name, qty) VALUES (?, ?) RETURNING id")) {
                for (int i = 1; i <= 2; i++) {
                    ps.setString(1, "jdbc-" + i);
                    ps.setInt(2, 100 + i);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        inserted.add(Integer.toString(rs.getInt(1)));
                    }
                }
            }
            c.commit();
            c.setAutoCommit(true);
            try (PreparedStatement ps = c.prepareStatement("UPDATE items SET qty = qty + ? WHERE name = ?")) {
                for (String n : new String[] { "jdbc-1", "jdbc-2", "no-such-item" }) {
                    ps.setInt(1, 1);
                    ps.setString(2, n);
                    ps.addBatch();
                }
                for (int n : ps.executeBatch())
                    batch.add(Integer.toString(n));
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT v FROM secrets")) {
                deniedMsg = "no error: the statement ran";
            } catch (SQLException e) {
                deniedState = e.getSQLState();
                deniedMsg = e.getMessage();
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
                rs.next();
                after = rs.getInt(1);
            }
        }
        System.out.println("{\"rows\":" + list(rows) + ",\"inserted\":" + list(inserted) + ",\"batch\":"
                           + list(batch) + ",\"denied_state\":" + q(deniedState) + ",\"denied_msg\":"
                           + q(deniedMsg) + ",\"after\":" + after + "}");
    }
}
